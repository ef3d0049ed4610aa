/* chexmask-rt C API: chest X-ray landmarks with uncertainty, callable from C, C#/.NET (P/Invoke),
 * or anything else with a C FFI. Link libchexmask_rt.so (CMake: chexmask_rt::chexmask_rt).
 *
 *   chexmask_rt_engine* engine = NULL;
 *   if (chexmask_rt_engine_open("model.onnx", NULL, &engine) != CHEXMASK_RT_OK) {
 *       fprintf(stderr, "%s\n", chexmask_rt_last_error());   // why, in one line
 *       return 1;
 *   }
 *   chexmask_rt_image image = {pixels, width, height, row_bytes, 8, buffer_bytes};
 *   chexmask_rt_result* result = NULL;
 *   if (chexmask_rt_predict(engine, &image, 50, 0, CHEXMASK_RT_SECOND_LOOK_DEFAULT, &result) == CHEXMASK_RT_OK) {
 *       const chexmask_rt_result_fields* r = chexmask_rt_result_get(result);
 *       // r->landmarks[2 * i], r->landmarks[2 * i + 1]: x, y of landmark i in the image's pixels
 *       chexmask_rt_result_free(result);
 *   }
 *   chexmask_rt_engine_free(engine);
 *
 * Rules: every function that can fail returns a chexmask_rt_status; on failure
 * chexmask_rt_last_error() (per thread) says why, and *out is left NULL. No C++ exception leaves the
 * library. Strings and arrays the library returns stay valid until their handle is freed. An engine
 * may be shared between threads; a result belongs to one and may outlive its engine. Free an engine
 * once, after every call on it has returned (as with free(), a handle used after it is freed is
 * undefined behaviour). Do not fork() while a call is running:
 * the child inherits ONNX Runtime's locks held and its calls can hang (fork between calls, or
 * create engines after the fork). The first engine opened sets ORT_DISABLE_TELEMETRY=1 in the
 * process environment unless it is set (ONNX Runtime's telemetry is off); set it yourself before
 * starting threads that read the environment. The numbers equal the C++ API's (and the
 * Python package's) for the same engine, image, samples and seed.
 */
#ifndef CHEXMASK_RT_C_H
#define CHEXMASK_RT_C_H

#include <chexmask_rt/api.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a declaration in this header changes incompatibly; compare with chexmask_rt_abi_version(). */
#define CHEXMASK_RT_C_ABI_VERSION 1

typedef enum chexmask_rt_status {
    CHEXMASK_RT_OK = 0,
    CHEXMASK_RT_INPUT_ERROR = 1, /* bad image or argument (the C++ InputError) */
    CHEXMASK_RT_MODEL_ERROR = 2, /* engine file, ONNX Runtime library or device unusable (ModelError) */
    CHEXMASK_RT_RUNTIME_ERROR = 3, /* anything else, e.g. out of memory (a failed engine run is a MODEL_ERROR) */
} chexmask_rt_status;

/* ABI version of the loaded library (CHEXMASK_RT_C_ABI_VERSION it was built with). */
CHEXMASK_RT_API int chexmask_rt_abi_version(void);
/* Library version, "major.minor.patch": the repository's VERSION file, compiled in. */
CHEXMASK_RT_API const char* chexmask_rt_version(void);
/* What every result is for: "research use only; not for diagnosis". Outputs for people or systems say it. */
CHEXMASK_RT_API const char* chexmask_rt_intended_use(void);
/* Why this thread's last call that returns a status failed; "" after one that succeeded. Valid until
 * this thread's next such call. */
CHEXMASK_RT_API const char* chexmask_rt_last_error(void);

/* Optional: receives the library's and ONNX Runtime's messages (level 2 warning, 3 error, 4 fatal; 1 info:
 * which ONNX Runtime and providers an engine uses), from any thread. NULL (the default) drops them.
 * Process-wide; may be called from any thread. The callback runs outside the library's locks, so it may
 * call the library. Once this returns, the callback it replaced is no longer running (it waits for
 * deliveries on other threads), so its `user` may be freed; called from within a callback it does not wait. */
typedef void (*chexmask_rt_log_fn)(int level, const char* message, void* user);
CHEXMASK_RT_API void chexmask_rt_set_log_callback(chexmask_rt_log_fn callback, void* user);

/* ---- engine ---------------------------------------------------------------------------------- */

typedef struct chexmask_rt_engine chexmask_rt_engine; /* opaque */

typedef struct chexmask_rt_engine_options {
    size_t struct_size;              /* sizeof(chexmask_rt_engine_options); set by _options_init (required) */
    const char* onnxruntime_library; /* path of libonnxruntime.so.1.*; NULL: $CHEXMASK_RT_ONNXRUNTIME_LIBRARY,
                                        else the linked one (ONNXRUNTIME_ROOT builds), else libonnxruntime.so.1
                                        from the loader's path. The first engine fixes it for the process. */
    int intra_op_threads;            /* 0: one per usable physical core; 1..256; else CHEXMASK_RT_MODEL_ERROR */
    const char* device;              /* NULL or "cpu"; "cuda"; "tensorrt" (lower case; ONNX Runtime's providers:
                                        the library must have them, else CHEXMASK_RT_MODEL_ERROR says what is
                                        missing). Not tested on a GPU here. */
    const char* tensorrt_cache_dir;  /* "tensorrt": where its built engines are kept; NULL: not kept */
    const char* quality_file;        /* the reliability flag's calibration; NULL or "": "<model stem>.quality.json"
                                        beside the model file (or the file a link names) if it exists
                                        (none from memory); a file named
                                        here but missing, or one found or named but malformed:
                                        CHEXMASK_RT_MODEL_ERROR */
    int images_per_call;             /* images per engine call in chexmask_rt_predict_batch; 0: one on the
                                        CPU (the fastest there), all on a GPU (EngineOptions in the C++ header) */
    const char* expected_sha256;     /* the model file's SHA-256, 64 hex digits as sha256sum prints it: any other
                                        bytes are CHEXMASK_RT_MODEL_ERROR. NULL or "": checked against the SHA-256
                                        its export recorded in it, else the one <model file>.sha256 lists */
    int layout_optimizations;        /* 1: ONNX Runtime's layout optimisations (EngineOptions in the C++ header:
                                        no faster here); 0 (default): off */
    int memory_pattern;              /* 1: ONNX Runtime's memory pattern (a pre-planned block per input shape);
                                        0 (default): off, about a third less peak memory at 1024 */
} chexmask_rt_engine_options;

/* Fills `options` with the defaults (what passing NULL to the open functions means). */
CHEXMASK_RT_API void chexmask_rt_engine_options_init(chexmask_rt_engine_options* options);

/* Opens an ONNX engine written by `chexmask-rt export`, from a file or from its bytes in memory
 * (read during the call only). `options` may be NULL. An engine with external data (none from
 * `chexmask-rt export`) reads it from the file's folder, never outside it; from memory, ONNX Runtime
 * looks for it in the process's working folder. The integrity check (expected_sha256, the seal, a
 * .sha256 list) covers the engine's own bytes, not its external data: keep weights inside it. */
CHEXMASK_RT_API chexmask_rt_status chexmask_rt_engine_open(const char* model_path,
                                                           const chexmask_rt_engine_options* options,
                                                           chexmask_rt_engine** out);
CHEXMASK_RT_API chexmask_rt_status chexmask_rt_engine_open_memory(const void* model_data, size_t model_size,
                                                                  const chexmask_rt_engine_options* options,
                                                                  chexmask_rt_engine** out);
CHEXMASK_RT_API void chexmask_rt_engine_free(chexmask_rt_engine* engine); /* NULL is ignored */

/* What the engine file says about itself. */
typedef struct chexmask_rt_model_info {
    const char* id;          /* "<model_name>:<model_version>", as results name it */
    int inputsize;           /* the engine's square input side */
    int latents;             /* latent width */
    int second_look;         /* 1: predict's default is the second look */
    int trained;             /* 0: a placeholder with meaningless landmarks */
    const char* providers;   /* ONNX Runtime execution providers in use, best first, ", "-separated */
    int landmarks;           /* landmarks per result (the graph's; 120 for HybridGNet) */
    const char* organs;      /* the contours in landmark order, "name:count,...": "right_lung:44,left_lung:50,
                                heart:26" for HybridGNet (appended within ABI 1: a library
                                older than this header lacks it; see chexmask_rt_version()) */
} chexmask_rt_model_info;
CHEXMASK_RT_API const chexmask_rt_model_info* chexmask_rt_engine_info(const chexmask_rt_engine* engine);

/* ---- predict --------------------------------------------------------------------------------- */

/* A grayscale image in caller-owned memory, read in place, 32..65536 pixels on each side. Set bit_depth
 * always: a zero-initialised struct reads its buffer as uint16 (bit_depth 0), so 8-bit pixels need 8. */
typedef struct chexmask_rt_image {
    const void* data;   /* first pixel of the first row, aligned to the pixel's size (as is stride) */
    int width;
    int height;
    size_t stride;      /* bytes from one row to the next, >= width * bytes per pixel */
    int bit_depth;      /* 8: uint8; 9..16: uint16 with that many significant bits (12-bit detector: 12;
                           larger pixels are an input error); 0: uint16, the depth inferred from the
                           largest value (a dark 12-bit exposure then reads as 11-bit, twice as
                           bright); 32: float32 in [0, 1] */
    size_t size_bytes;  /* size of the buffer behind data; checked when non-zero */
} chexmask_rt_image;

#define CHEXMASK_RT_SECOND_LOOK_DEFAULT (-1) /* the engine's choice (chexmask_rt_model_info.second_look) */
#define CHEXMASK_RT_SECOND_LOOK_OFF 0        /* one engine call */
#define CHEXMASK_RT_SECOND_LOOK_ON 1         /* a second call on a crop around the lungs */

typedef struct chexmask_rt_result chexmask_rt_result; /* opaque */

/* Segments one image with `samples` (1..10000) latent draws of noise fixed by `seed`. Memory grows with
 * samples: about 0.3 MB each with the shipped model (a small program's peak: 90 MB at 50, 3.4 GB at 10000). */
CHEXMASK_RT_API chexmask_rt_status chexmask_rt_predict(const chexmask_rt_engine* engine,
                                                       const chexmask_rt_image* image, int samples,
                                                       uint64_t seed, int second_look,
                                                       chexmask_rt_result** out);
/* Segments `count` images with one noise draw, images_per_call images to an engine call: image i gets what
 * chexmask_rt_predict gives it with the same samples and seed, bit-identical when each image is its own call
 * (images_per_call 0 on the CPU, the default, or 1); several images in one call round differently (within
 * 1e-3 px in the 1024 frame: 2e-3 px on a 2000-px image). `out` is the caller's array of `count` pointers; each result is freed with
 * chexmask_rt_result_free. All or nothing: on a failure every out[i] is NULL and the message names the
 * image's index. `count` 0, a NULL argument, or a count no array can have (one that wrapped below zero)
 * is a CHEXMASK_RT_INPUT_ERROR that leaves out[] untouched. A faulty engine's NaN or impossible value in
 * one image's answer fails the whole call (CHEXMASK_RT_MODEL_ERROR, the image's index in the message):
 * predict images one by one to keep the others. */
CHEXMASK_RT_API chexmask_rt_status chexmask_rt_predict_batch(const chexmask_rt_engine* engine,
                                                             const chexmask_rt_image* images, size_t count,
                                                             int samples, uint64_t seed, int second_look,
                                                             chexmask_rt_result** out);
CHEXMASK_RT_API void chexmask_rt_result_free(chexmask_rt_result* result); /* NULL is ignored */

/* Every field of a result; coordinates are in the original image's pixels, points are (x, y) pairs: x the
 * column, y the row (down), (0, 0) the centre of the top-left pixel. */
typedef struct chexmask_rt_result_fields {
    int height;
    int width;
    int samples;
    uint64_t seed;
    size_t landmark_count;           /* 120 */
    const double* landmarks;         /* [landmark_count][2]: mean over the samples */
    const double* landmarks_std;     /* [landmark_count][2]: std over the samples (ddof 0) */
    const double* landmarks_mu;      /* [landmark_count][2]: decode at z = mu */
    const double* node_uncertainty;  /* [landmark_count]: (std_x + std_y) / 2 */
    size_t latent_count;
    const double* latent_mu;         /* [latent_count] */
    const double* latent_sigma;      /* [latent_count] */
    double mean_node_std;            /* the image's uncertainty score, in the original image's pixels
                                        (quality_reason quotes it in the 1024 frame: x 1024 / max(h, w)) */
    double mean_latent_sigma;
    /* NULL: no second look was made. "pooled", "crop_only" or "none" (no usable crop; crop_* are 0). */
    const char* second_look;
    double first_fill;               /* how far the first answer's lungs span the image: the larger of
                                        their box's width / image width and height / image height */
    int crop_left;                   /* the crop square, original pixels */
    int crop_top;
    int crop_side;
    /* The reliability flag (C++ Result::quality): 1 = an uncertainty score exceeds the threshold
     * calibrated for this model; review the answer before trusting it. */
    int quality_flag;
    const char* quality_reason;      /* which scores against which thresholds, or why there is no flag */
    int quality_calibrated;          /* 0: no thresholds for this model, quality_flag is always 0 */
} chexmask_rt_result_fields;
CHEXMASK_RT_API const chexmask_rt_result_fields* chexmask_rt_result_get(const chexmask_rt_result* result);

/* 1 when landmarks_std, node_uncertainty and mean_node_std measure a spread; 0 for one decode (samples 1,
 * no pooled second look), whose std is 0 because there is nothing to spread, not because the model is
 * sure (the examples' JSON writes null then); 0 for NULL. */
CHEXMASK_RT_API int chexmask_rt_result_spread_measured(const chexmask_rt_result* result);
/* The bit depth the pixels were scaled by (given, or inferred from the largest value when the image's
 * bit_depth was 0): 8, 9..16, or 32 for float; 0 for NULL. */
CHEXMASK_RT_API int chexmask_rt_result_bit_depth(const chexmask_rt_result* result);

/* ---- every engine-output field, by the schema table (result_fields.def) ------------------------
 * A field added to the table is reachable here without a change to this header:
 *
 *   for (size_t i = 0; i < chexmask_rt_field_count(); ++i) {
 *       const chexmask_rt_field_info* f = chexmask_rt_field_info_at(i);
 *       chexmask_rt_field_values v;
 *       if (chexmask_rt_result_field(result, f->name, &v) == CHEXMASK_RT_OK && v.rows > 0) ...
 *   }
 */
typedef struct chexmask_rt_field_info {
    const char* name;        /* the field (and JSON key), e.g. "landmarks" */
    const char* output;      /* the engine output it is read from */
    const char* kind;        /* "position" (points in pixels), "spread" (a std in pixels), "vector" (per
                                latent), "samples" (per-sample points, sample-major) */
    const char* unit;        /* "px" or "" */
    int required;            /* 1: every engine has it; 0: empty unless the engine has the output */
    const char* two_looks;   /* how a pooled second look combines: "mean", "pooled_std", "concat" */
    const char* pooled_with; /* "pooled_std": the mean field it pools with; else the field itself */
    int json;                /* 1: written in the JSON */
    const char* csv;         /* its results.csv column, "" for none */
    const char* doc;         /* one line */
} chexmask_rt_field_info;

/* The number of fields, and field `index`'s description (NULL past the end). */
CHEXMASK_RT_API size_t chexmask_rt_field_count(void);
CHEXMASK_RT_API const chexmask_rt_field_info* chexmask_rt_field_info_at(size_t index);

/* A field's values: `rows` x `columns` doubles, row-major; columns 2 for points (x, y), 1 for vectors.
 * rows 0 (data NULL) for an optional field the engine does not output. */
typedef struct chexmask_rt_field_values {
    const double* data;
    size_t rows;
    size_t columns;
} chexmask_rt_field_values;

/* The values of the field called `name` in `result`; CHEXMASK_RT_INPUT_ERROR for an unknown name. */
CHEXMASK_RT_API chexmask_rt_status chexmask_rt_result_field(const chexmask_rt_result* result, const char* name,
                                                            chexmask_rt_field_values* out);
/* ---- organ masks ----------------------------------------------------------------------------- */

/* The filled polygon of `count` (x, y) pairs at `points_xy` as a row-major height x width mask of 0 and
 * 255, written to `out` (out_size >= height * width bytes, else CHEXMASK_RT_INPUT_ERROR): an organ's mask
 * from a result's landmarks (right lung 0-43, left lung 44-93, heart 94-119 for HybridGNet;
 * chexmask_rt_model_info.organs for another engine). The same bytes as
 * chexmask_rt::polygon_mask and the Python package's masks; on a failure `out` is left as it was. Needs no
 * engine; thread-safe. */
CHEXMASK_RT_API chexmask_rt_status chexmask_rt_polygon_mask(const double* points_xy, size_t count, int height,
                                                            int width, uint8_t* out, size_t out_size);

#ifdef __cplusplus
}
#endif

#endif /* CHEXMASK_RT_C_H */
