/* chexmask-rt-c: the C API's example, the template for C device software.
 *
 *   chexmask-rt-c --model M [--samples K] [--seed S] [--threads T] [--onnxruntime LIB]
 *                 [--device cpu|cuda|tensorrt] [--single-look | --second-look] [--from-memory] IMAGE.pgm...
 *
 * Reads binary PGM (P5, 8- or 16-bit; no image library needed) and prints, per image, the JSON
 * that chexmask-rt-cpp prints for the same file, byte for byte (a list of those that succeeded, for
 * several images; a failed one is named on stderr and the others go on).
 * --from-memory loads the engine from its bytes instead of its path, and names its calibration
 * (<model stem>.quality.json, when there is one) as the library would find it beside the file.
 * Exit codes: 0 ok, 1 some of several images failed, 2 usage, 3 input error, 4 model error.
 */
#include <chexmask_rt/chexmask_rt_c.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_SOME_FAILED = 1, EXIT_USAGE = 2, EXIT_INPUT = 3, EXIT_MODEL = 4 };

/* problem NULL: asked for (--help), to stdout with exit 0; else a usage error. */
static void usage(const char* problem) {
    FILE* to = problem == NULL ? stdout : stderr;
    fprintf(to, "usage: chexmask-rt-c --model M [--samples K] [--seed S] [--threads T] [--onnxruntime LIB] "
                "[--device cpu|cuda|tensorrt] [--single-look | --second-look] [--from-memory] IMAGE.pgm...\n");
    if (problem != NULL) fprintf(stderr, "chexmask-rt-c: error: %s\n", problem);
    exit(problem == NULL ? (fflush(stdout) == 0 && !ferror(stdout) ? 0 : EXIT_INPUT) : EXIT_USAGE);
}

/* A whole number in 0..max, else a usage error: a wrapped or clamped value would run with a number the
 * user did not ask for. */
static unsigned long long parse_number(const char* text, unsigned long long max) {
    char* end = NULL;
    unsigned long long value;
    if (text[0] < '0' || text[0] > '9') usage("options need a non-negative integer");
    errno = 0;
    value = strtoull(text, &end, 10);
    if (*end != '\0') usage("options need a non-negative integer");
    if (errno == ERANGE || value > max) {
        fprintf(stderr, "chexmask-rt-c: error: %s is out of range (at most %llu)\n", text, max);
        exit(EXIT_USAGE);
    }
    return value;
}

/* ---- PGM input ------------------------------------------------------------------------------- */

typedef struct {
    unsigned char* pixels; /* rows of `stride` bytes */
    chexmask_rt_image view;
} gray_image;

/* The next header number of a PGM, skipping whitespace and # comments; -1 if there is none. */
static long pgm_number(FILE* f) {
    int c = fgetc(f);
    long value = 0;
    for (;;) {
        while (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = fgetc(f);
        if (c != '#') break;
        while (c != '\n' && c != EOF) c = fgetc(f);
    }
    if (c < '0' || c > '9') return -1;
    for (; c >= '0' && c <= '9'; c = fgetc(f)) {
        value = value * 10 + (c - '0');
        if (value > 1000000) return -1;
    }
    return value; /* the one whitespace after the last number is consumed */
}

/* The pixel depth a PGM declares: maxval 2^n - 1 for a detector's n bits (9..15). 65535 says nothing of
 * the detector (OpenCV and most tools write it for any 16-bit image), so that depth, like any other
 * maxval above 255, is left for the library to infer (0). Device code knows its detector: pass that. */
static int pgm_bit_depth(long maxval) {
    int n;
    if (maxval <= 255) return 8;
    for (n = 9; n <= 15; ++n)
        if (maxval == (1L << n) - 1) return n;
    return 0;
}

/* Reads a P5 PGM into rows padded to 64 bytes (a stride wider than the row, as camera buffers have). */
static int read_pgm(const char* path, gray_image* g) {
    FILE* f = fopen(path, "rb");
    long w, h, maxval;
    size_t bpp, row_bytes, y, x;
    int ok = 0;
    memset(g, 0, sizeof *g);
    if (f == NULL) return 0;
    if (fgetc(f) == 'P' && fgetc(f) == '5' && (w = pgm_number(f)) > 0 && (h = pgm_number(f)) > 0 &&
        (maxval = pgm_number(f)) > 0 && maxval <= 65535) {
        bpp = maxval > 255 ? 2 : 1;
        row_bytes = (size_t)w * bpp;
        g->view.stride = (row_bytes + 63) / 64 * 64;
        g->pixels = calloc((size_t)h, g->view.stride);
        ok = g->pixels != NULL;
        for (y = 0; ok && y < (size_t)h; ++y) {
            unsigned char* row = g->pixels + y * g->view.stride;
            ok = fread(row, 1, row_bytes, f) == row_bytes;
            for (x = 0; ok && bpp == 2 && x < (size_t)w; ++x) { /* PGM is big-endian */
                const uint16_t v = (uint16_t)(row[2 * x] << 8 | row[2 * x + 1]);
                memcpy(row + 2 * x, &v, 2);
            }
        }
        g->view.data = g->pixels;
        g->view.width = (int)w;
        g->view.height = (int)h;
        g->view.size_bytes = (size_t)h * g->view.stride;
        g->view.bit_depth = pgm_bit_depth(maxval);
    }
    fclose(f);
    if (!ok) free(g->pixels);
    return ok;
}

/* ---- JSON output, as chexmask-rt-cpp writes it ------------------------------------------------ */

/* The shortest decimal that reads back as `v`, in the shorter of fixed and scientific notation (fixed
 * on a tie): what C++17's std::to_chars(double) writes, and Python's repr for these values. */
static void print_number(FILE* out, double v) {
    char sci[40], digits[20], fixed[400]; /* fixed: up to 309 integer digits */
    char* f = fixed;
    int precision, exponent, n = 0, i;
    const char* p;
    if (v == 0) {
        fputs(signbit(v) ? "-0" : "0", out);
        return;
    }
    if (isnan(v) || isinf(v)) {
        fputs(isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"), out);
        return;
    }
    for (precision = 0; precision < 17; ++precision) { /* glibc's %e rounds correctly */
        snprintf(sci, sizeof sci, "%.*e", precision, v);
        if (strtod(sci, NULL) == v) break;
    }
    for (p = sci; *p != 'e'; ++p)
        if (*p >= '0' && *p <= '9') digits[n++] = *p;
    digits[n] = '\0';
    exponent = atoi(p + 1);
    /* scientific: d[.ddd]e±XX */
    snprintf(sci, sizeof sci, "%s%c%s%se%c%02d", v < 0 ? "-" : "", digits[0], n > 1 ? "." : "", digits + 1,
             exponent < 0 ? '-' : '+', exponent < 0 ? -exponent : exponent);
    /* fixed: the same digits around the decimal point */
    if (v < 0) *f++ = '-';
    if (exponent < 0) {
        *f++ = '0';
        *f++ = '.';
        for (i = 0; i < -exponent - 1; ++i) *f++ = '0';
        for (i = 0; i < n; ++i) *f++ = digits[i];
    } else {
        for (i = 0; i < n || i <= exponent; ++i) {
            if (i == exponent + 1) *f++ = '.';
            *f++ = i < n ? digits[i] : '0';
        }
    }
    *f = '\0';
    fputs(strlen(fixed) <= strlen(sci) ? fixed : sci, out);
}

/* The length of the valid UTF-8 sequence at s (1-4), or 0 where none starts there. */
static int utf8_length(const unsigned char* s) {
    const unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;  /* no overlong, no surrogate */
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        const unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;  /* at most U+10FFFF */
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/* A JSON string. A byte that is not UTF-8 (a file name from an old archive) is written as Python's
   json module writes the name chexmask-rt predict read: \udcXX, so the JSON stays valid and names
   the same bytes. */
static void print_quoted(FILE* out, const char* text) {
    const unsigned char* s = (const unsigned char*)text;
    fputc('"', out);
    while (*s) {
        const int n = utf8_length(s);
        if (n == 0) {
            fprintf(out, "\\udc%02x", *s++);
        } else if (*s == '"' || *s == '\\') {
            fprintf(out, "\\%c", *s++);
        } else if (*s < 0x20) {
            fprintf(out, "\\u%04x", *s++);
        } else {
            fwrite(s, 1, (size_t)n, out);
            s += n;
        }
    }
    fputc('"', out);
}

/* A field's values: a list of numbers (one column) or of [x, y] pairs. */
static void print_values(FILE* out, const double* v, size_t rows, size_t columns) {
    size_t i, c;
    fputc('[', out);
    for (i = 0; i < rows; ++i) {
        if (i) fputs(", ", out);
        if (columns > 1) fputc('[', out);
        for (c = 0; c < columns; ++c) {
            if (c) fputs(", ", out);
            print_number(out, v[i * columns + c]);
        }
        if (columns > 1) fputc(']', out);
    }
    fputc(']', out);
}

static void print_result(FILE* out, const chexmask_rt_result* result, const char* image, const char* model_id) {
    const chexmask_rt_result_fields* r = chexmask_rt_result_get(result);
    const int measured = chexmask_rt_result_spread_measured(result);
    size_t i;
    fputs("{\n \"image\": ", out);
    print_quoted(out, image);
    fprintf(out, ",\n \"height\": %d,\n \"width\": %d,\n \"samples\": %d,\n \"seed\": %" PRIu64
            ",\n \"bit_depth\": %d,\n \"model\": ",
            r->height, r->width, r->samples, r->seed, chexmask_rt_result_bit_depth(result));
    print_quoted(out, model_id);
    fputs(",\n \"intended_use\": ", out);
    print_quoted(out, chexmask_rt_intended_use());
    /* every field of the schema table that it marks for the JSON and the result has */
    for (i = 0; i < chexmask_rt_field_count(); ++i) {
        const chexmask_rt_field_info* f = chexmask_rt_field_info_at(i);
        chexmask_rt_field_values v;
        if (!f->json || chexmask_rt_result_field(result, f->name, &v) != CHEXMASK_RT_OK || v.rows == 0) continue;
        fprintf(out, ",\n \"%s\": ", f->name);
        /* one decode's std is 0 because nothing spreads, not because the model is sure: null */
        if (!measured && strcmp(f->kind, "spread") == 0)
            fputs("null", out);
        else
            print_values(out, v.data, v.rows, v.columns);
    }
    fputs(",\n \"node_uncertainty\": ", out);
    if (measured)
        print_values(out, r->node_uncertainty, r->landmark_count, 1);
    else
        fputs("null", out);
    fputs(",\n \"scores\": {\"mean_node_std\": ", out);
    if (measured)
        print_number(out, r->mean_node_std);
    else
        fputs("null", out);
    fputs(", \"mean_latent_sigma\": ", out);
    print_number(out, r->mean_latent_sigma);
    fputc('}', out);
    if (r->second_look != NULL) {
        fputs(",\n \"second_look\": {\"look\": ", out);
        print_quoted(out, r->second_look);
        fputs(", \"first_fill\": ", out);
        print_number(out, r->first_fill);
        if (strcmp(r->second_look, "none") != 0)
            fprintf(out, ", \"crop_left\": %d, \"crop_top\": %d, \"crop_side\": %d", r->crop_left, r->crop_top,
                    r->crop_side);
        fputc('}', out);
    }
    fprintf(out, ",\n \"quality\": {\"flag\": %s, \"reason\": ", r->quality_flag ? "true" : "false");
    print_quoted(out, r->quality_reason);
    fprintf(out, ", \"calibrated\": %s}", r->quality_calibrated ? "true" : "false");
    fputs("\n}", out);
}

/* ---- main ------------------------------------------------------------------------------------ */

/* "<model stem>.quality.json", where the library looks for an engine file's calibration; NULL if no such file.
 * An engine opened from memory has no file name, so the caller names its calibration. */
static char* calibration_beside(const char* model) {
    const char* slash = strrchr(model, '/');
    const char* base = slash == NULL ? model : slash + 1;
    const char* dot = strrchr(base, '.');
    const size_t stem = dot == NULL || dot == base ? strlen(model) : (size_t)(dot - model);
    char* path = malloc(stem + sizeof ".quality.json");
    FILE* f;
    if (path == NULL) return NULL;
    memcpy(path, model, stem);
    strcpy(path + stem, ".quality.json");
    f = fopen(path, "rb");
    if (f == NULL) {
        free(path);
        return NULL;
    }
    fclose(f);
    return path;
}

static chexmask_rt_status open_engine(const char* model, int from_memory, chexmask_rt_engine_options* options,
                                      chexmask_rt_engine** engine) {
    FILE* f;
    char* bytes;
    char* calibration;
    long size;
    chexmask_rt_status status;
    if (!from_memory) return chexmask_rt_engine_open(model, options, engine);
    f = fopen(model, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
        if (f != NULL) fclose(f);
        return chexmask_rt_engine_open(model, options, engine); /* the library says what is wrong */
    }
    bytes = malloc((size_t)size);
    if (bytes == NULL || fread(bytes, 1, (size_t)size, f) != (size_t)size) size = 0;
    fclose(f);
    calibration = calibration_beside(model);
    options->quality_file = calibration;
    status = chexmask_rt_engine_open_memory(bytes, (size_t)size, options, engine);
    options->quality_file = NULL;
    free(calibration);
    free(bytes); /* the engine keeps no reference to the bytes */
    return status;
}

int main(int argc, char** argv) {
    const char* model = NULL;
    int samples = 50, second_look = CHEXMASK_RT_SECOND_LOOK_DEFAULT, from_memory = 0, first_image = 0, i, count;
    int printed = 0, failed_code = 0;
    uint64_t seed = 0;
    chexmask_rt_engine_options options;
    chexmask_rt_engine* engine = NULL;
    chexmask_rt_status status;

    chexmask_rt_engine_options_init(&options);
    for (i = 1; i < argc; ++i) {
        const char* a = argv[i];
        const int has_value = i + 1 < argc;
        if (strcmp(a, "--model") == 0 && has_value) model = argv[++i];
        else if (strcmp(a, "--samples") == 0 && has_value) samples = (int)parse_number(argv[++i], INT_MAX);
        else if (strcmp(a, "--seed") == 0 && has_value) seed = parse_number(argv[++i], UINT64_MAX);
        else if (strcmp(a, "--threads") == 0 && has_value) options.intra_op_threads = (int)parse_number(argv[++i], INT_MAX);
        else if (strcmp(a, "--onnxruntime") == 0 && has_value) options.onnxruntime_library = argv[++i];
        else if (strcmp(a, "--device") == 0 && has_value) options.device = argv[++i];
        else if (strcmp(a, "--single-look") == 0) second_look = CHEXMASK_RT_SECOND_LOOK_OFF;
        else if (strcmp(a, "--second-look") == 0) second_look = CHEXMASK_RT_SECOND_LOOK_ON;
        else if (strcmp(a, "--from-memory") == 0) from_memory = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) usage(NULL);
        else if (a[0] == '-') usage("unknown option or missing value");
        else if (first_image == 0) first_image = i;
        else continue;
        if (first_image != 0 && first_image != i) usage("options must come before the images");
    }
    if (model == NULL) usage("--model is required");
    if (first_image == 0) usage("no images given");
    if (chexmask_rt_abi_version() != CHEXMASK_RT_C_ABI_VERSION) {
        fprintf(stderr, "chexmask-rt-c: error: libchexmask_rt has C ABI %d, this program was built for %d\n",
                chexmask_rt_abi_version(), CHEXMASK_RT_C_ABI_VERSION);
        return EXIT_MODEL;
    }

    status = open_engine(model, from_memory, &options, &engine);
    if (status != CHEXMASK_RT_OK) {
        fprintf(stderr, "chexmask-rt-c: error: %s\n", chexmask_rt_last_error());
        return status == CHEXMASK_RT_MODEL_ERROR ? EXIT_MODEL : EXIT_INPUT;
    }
    /* Each image on its own: one that fails is named, and the others still get their answers. */
    count = argc - first_image;
    if (count > 1) fputs("[\n", stdout);
    for (i = first_image; i < argc; ++i) {
        gray_image image;
        chexmask_rt_result* result = NULL;
        if (!read_pgm(argv[i], &image)) {
            fprintf(stderr, "chexmask-rt-c: error: %s: not a readable binary PGM (P5) image\n", argv[i]);
            failed_code = EXIT_INPUT;
            continue;
        }
        status = chexmask_rt_predict(engine, &image.view, samples, seed, second_look, &result);
        free(image.pixels);
        if (status != CHEXMASK_RT_OK) {
            const char* why = chexmask_rt_last_error();
            fprintf(stderr, "chexmask-rt-c: error: %s: %s\n", argv[i], strncmp(why, "image: ", 7) == 0 ? why + 7 : why);
            failed_code = status == CHEXMASK_RT_MODEL_ERROR ? EXIT_MODEL : EXIT_INPUT;
            continue;
        }
        if (printed++ > 0) fputs(",\n", stdout);
        print_result(stdout, result, argv[i], chexmask_rt_engine_info(engine)->id);
        chexmask_rt_result_free(result);
    }
    if (printed > 0) fputs("\n", stdout);
    if (count > 1) fputs("]\n", stdout);
    chexmask_rt_engine_free(engine);
    if (fflush(stdout) != 0 || ferror(stdout)) return EXIT_INPUT;
    return failed_code == 0 ? 0 : (count == 1 ? failed_code : EXIT_SOME_FAILED);
}
