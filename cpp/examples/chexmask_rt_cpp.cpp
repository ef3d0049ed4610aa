// chexmask-rt-cpp: the template a device integrator copies.
//
//   chexmask-rt-cpp --model M [--samples K] [--seed S] [--threads T] [--onnxruntime LIB]
//                   [--device cpu|cuda|tensorrt] [--single-look | --second-look] IMAGE...
//
// Reads PNG/JPEG/BMP/PGM with OpenCV and prints, per image, the JSON object of
// `chexmask-rt predict --json -` (a list of those that succeeded, for several images).
// TIFF is refused: OpenCV misreads some valid ones (an alpha band multiplied in, 16-bit WhiteIsZero
// uninverted, a thumbnail page first). A damaged JPEG (cut short, or corrupt data), which OpenCV
// fills in with a warning on stderr, is refused too: libjpeg reads it first, its warnings as errors.
// As the Python package, it reads regular files only, and refuses a PNG, BMP or JPEG whose header
// declares more pixels than the limit (64 million, or $OPENCV_IO_MAX_IMAGE_PIXELS) before decoding it.
// Exit codes as the Python CLI: 0 ok, 1 some of several images failed, 2 usage, 3 input error,
// 4 model error.
#include <chexmask_rt/chexmask_rt.hpp>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <charconv>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <jpeglib.h>  // after <cstdio>: it needs FILE
#include <jerror.h>   // the message codes

namespace {

constexpr int kExitSomeFailed = 1, kExitUsage = 2, kExitInput = 3, kExitModel = 4;

// The pixel limit, checked on a PNG's, BMP's or JPEG's header before its pixels are decoded: the
// Python package's default (a 2 MB PNG of 16000x16000 16-bit RGBA took 4.1 GB here), or the
// environment's OPENCV_IO_MAX_IMAGE_PIXELS, which OpenCV itself applies to the other formats (2^30
// pixels where it is not set: OpenCV reads it when it is loaded, before main could set it).
constexpr unsigned long long kDefaultMaxPixels = 64'000'000;
// A stored pixel takes at most 16 bytes; a file larger than the limit's image, plus room for metadata,
// is refused unread (as the Python package: /dev/zero was read until memory ran out)
constexpr unsigned long long kMaxBytesPerPixel = 16, kMetadataBytes = 64ULL << 20;
unsigned long long g_max_pixels = kDefaultMaxPixels;

void set_pixel_limit() {
    const char* set = std::getenv("OPENCV_IO_MAX_IMAGE_PIXELS");
    if (set == nullptr) return;
    unsigned long long value = 0;
    const char* end = set + std::strlen(set);
    if (std::from_chars(set, end, value).ptr == end && value > 0) g_max_pixels = value;
}

unsigned long long big_endian(const std::vector<unsigned char>& b, std::size_t at) {
    return (0ULL + b[at]) << 24 | b[at + 1] << 16 | b[at + 2] << 8 | b[at + 3];
}

/// The width and height a PNG's or BMP's header declares; {0, 0} for other files.
std::pair<unsigned long long, unsigned long long> declared_size(const std::vector<unsigned char>& b) {
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    if (b.size() >= 24 && std::equal(std::begin(png), std::end(png), b.begin())) {
        return {big_endian(b, 16), big_endian(b, 20)};
    }
    if (b.size() >= 26 && b[0] == 'B' && b[1] == 'M') {
        std::int32_t header = 0, width = 0, height = 0;
        std::memcpy(&header, &b[14], 4);  // little-endian, as the machines this runs on
        if (header == 12) return {b[18] | b[19] << 8, b[20] | b[21] << 8};  // OS/2's core header: 16-bit sides
        std::memcpy(&width, &b[18], 4);
        std::memcpy(&height, &b[22], 4);  // negative: rows stored top-down
        return {static_cast<unsigned long long>(std::abs(static_cast<long long>(width))),
                static_cast<unsigned long long>(std::abs(static_cast<long long>(height)))};
    }
    return {0, 0};
}

struct Args {
    std::string model;
    std::string onnxruntime;
    std::string device = "cpu";
    int samples = 50;
    std::uint64_t seed = 0;
    int threads = 0;
    std::optional<bool> second_look;  // empty: the engine's own default
    std::vector<std::string> images;
};

// An empty problem: asked for (--help), to stdout with exit 0; else a usage error.
[[noreturn]] void usage(const std::string& problem) {
    std::ostream& to = problem.empty() ? std::cout : std::cerr;
    to << "usage: chexmask-rt-cpp --model M [--samples K] [--seed S] [--threads T] [--onnxruntime LIB] "
          "[--device cpu|cuda|tensorrt] [--single-look | --second-look] IMAGE...\n";
    if (!problem.empty()) std::cerr << "chexmask-rt-cpp: error: " << problem << "\n";
    if (problem.empty()) std::exit(std::cout.flush() ? 0 : kExitInput);
    std::exit(kExitUsage);
}

template <typename T>
T parse_number(const std::string& text, const std::string& flag) {
    T value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) usage(flag + " needs an integer, got '" + text + "'");
    return value;
}

Args parse_args(int argc, char** argv) {
    Args args;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(a + " needs a value");
            return argv[++i];
        };
        if (a == "--model") args.model = value();
        else if (a == "--samples") args.samples = parse_number<int>(value(), a);
        else if (a == "--seed") args.seed = parse_number<std::uint64_t>(value(), a);
        else if (a == "--threads") args.threads = parse_number<int>(value(), a);
        else if (a == "--onnxruntime") args.onnxruntime = value();
        else if (a == "--device") args.device = value();
        else if (a == "--single-look") args.second_look = false;
        else if (a == "--second-look") args.second_look = true;
        else if (a == "-h" || a == "--help") usage("");
        else if (a.size() > 1 && a[0] == '-') usage("unknown option " + a);
        else args.images.push_back(a);
    }
    if (args.model.empty()) usage("--model is required");
    if (args.images.empty()) usage("no images given");
    return args;
}

/// libjpeg's handlers for the strict read: an error, or a warning about the data ("Corrupt JPEG data",
/// "Premature end of JPEG file"), ends it with libjpeg's reason.
struct StrictJpeg {
    jpeg_error_mgr manager;
    std::jmp_buf jump;
    char reason[JMSG_LENGTH_MAX];
    int code;
};

[[noreturn]] void jpeg_refuse(j_common_ptr info) {
    auto* strict = reinterpret_cast<StrictJpeg*>(info->err);
    (*info->err->format_message)(info, strict->reason);
    strict->code = info->err->msg_code;
    std::longjmp(strict->jump, 1);
}

/// Whether libjpeg's error is a kind of JPEG it does not decode (12-bit, lossless), not damage.
bool jpeg_kind_unread(int code) {
    return code == JERR_BAD_PRECISION || code == JERR_SOF_UNSUPPORTED || code == JERR_NOT_COMPILED ||
           code == JERR_ARITH_NOTIMPL || code == JERR_CONVERSION_NOTIMPL;
}

void jpeg_warning(j_common_ptr info, int level) {
    // level -1 is a warning; those about the headers, not the image data, pass (as the Python reader's)
    const int code = info->err->msg_code;
    if (level < 0 && code != JWRN_JFIF_MAJOR && code != JWRN_NOT_SEQUENTIAL) jpeg_refuse(info);
}

constexpr int kAboveLimit = -1;  // jpeg_sound's code for a frame above the pixel limit (no libjpeg code)

/// Whether libjpeg reads the whole JPEG without an error or a warning about its data; else false, why
/// in ``reason`` and libjpeg's message code in ``code`` (kAboveLimit: its frame, ``width`` x ``height``,
/// is above the pixel limit, and nothing was decoded). No C++ object lives here: the error handler
/// longjmps out.
bool jpeg_sound(const unsigned char* data, std::size_t size, char (&reason)[JMSG_LENGTH_MAX], int& code,
                unsigned long long& width, unsigned long long& height) {
    jpeg_decompress_struct info;
    StrictJpeg strict;
    strict.code = 0;
    info.err = jpeg_std_error(&strict.manager);
    strict.manager.error_exit = jpeg_refuse;
    strict.manager.emit_message = jpeg_warning;
    if (setjmp(strict.jump)) {
        std::memcpy(reason, strict.reason, sizeof reason);
        code = strict.code;
        jpeg_destroy_decompress(&info);
        return false;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
    jpeg_read_header(&info, TRUE);
    width = info.image_width;
    height = info.image_height;
    if (width * height > g_max_pixels) {
        code = kAboveLimit;
        jpeg_destroy_decompress(&info);
        return false;
    }
    jpeg_start_decompress(&info);
    JSAMPARRAY row = (*info.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&info), JPOOL_IMAGE,
                                               info.output_width * info.output_components, 1);
    while (info.output_scanline < info.output_height) jpeg_read_scanlines(&info, row, 1);
    jpeg_finish_decompress(&info);
    jpeg_destroy_decompress(&info);
    return true;
}

/// The decoded gray image the engine reads; colour is handled as the Python reader does.
cv::Mat read_gray(const std::string& path) {
    std::error_code ec;  // a folder read as a stream throws libstdc++'s "basic_filebuf::underflow"
    const auto status = std::filesystem::status(path, ec);
    if (std::filesystem::is_directory(status)) throw chexmask_rt::InputError(path + ": a folder, not an image file");
    if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
        throw chexmask_rt::InputError(path + ": not a regular file");  // a FIFO, /dev/zero: read without end
    }
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec && size > g_max_pixels * kMaxBytesPerPixel + kMetadataBytes) {
        throw chexmask_rt::InputError(path + ": file is " + std::to_string(size >> 20) + " MiB, larger than an image "
                                      "within the pixel limit can be; refused unread");
    }
    std::ifstream file(path, std::ios::binary);
    const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (!file.good() && !file.eof()) throw chexmask_rt::InputError(path + ": cannot read the file");
    auto starts = [&](std::initializer_list<unsigned char> magic) {
        return bytes.size() >= magic.size() && std::equal(magic.begin(), magic.end(), bytes.begin());
    };
    if (starts({'I', 'I', 42, 0}) || starts({'M', 'M', 0, 42}) || starts({'I', 'I', 43, 0}) || starts({'M', 'M', 0, 43})) {
        throw chexmask_rt::InputError(path + ": a TIFF, which this example does not read (OpenCV misreads some valid "
                                      "ones); convert it to PNG, or use the Python package");
    }
    char reason[JMSG_LENGTH_MAX] = "";
    int code = 0;
    auto [width, height] = declared_size(bytes);
    if (starts({0xFF, 0xD8, 0xFF}) && !jpeg_sound(bytes.data(), bytes.size(), reason, code, width, height) &&
        code != kAboveLimit) {
        throw chexmask_rt::InputError(path + (jpeg_kind_unread(code) ? ": a JPEG this example does not read (" +
                                                                           std::string(reason) + "); use the Python package"
                                                                     : ": damaged JPEG: " + std::string(reason)));
    }
    if (width * height > g_max_pixels) {  // a PNG's, BMP's or JPEG's; two 32-bit sides: the product fits
        throw chexmask_rt::InputError(path + ": image is " + std::to_string(width) + "x" + std::to_string(height) +
                                      ", above the pixel limit of " + std::to_string(g_max_pixels) +
                                      " (OPENCV_IO_MAX_IMAGE_PIXELS)");
    }
    cv::Mat image;
    try {
        if (!bytes.empty()) image = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
    } catch (const cv::Exception& e) {  // OpenCV's own limit, on the formats not checked above
        if (e.err.find("CV_IO_MAX_IMAGE_PIXELS") == std::string::npos) throw;
        throw chexmask_rt::InputError(path + ": image above OpenCV's pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS)");
    }
    if (image.empty()) throw chexmask_rt::InputError(path + ": not a readable image (missing, corrupt or unsupported)");
    if (image.channels() == 3) cv::cvtColor(image, image, cv::COLOR_BGR2GRAY);
    else if (image.channels() == 4) cv::cvtColor(image, image, cv::COLOR_BGRA2GRAY);
    else if (image.channels() != 1) throw chexmask_rt::InputError(path + ": unsupported channel count");
    return image;
}

chexmask_rt::ImageView view_of(const cv::Mat& gray, const std::string& path) {
    int bit_depth = 0;
    switch (gray.depth()) {
        case CV_8U: bit_depth = 8; break;
        case CV_16U: bit_depth = 0; break;  // the core infers it from the largest value, as the Python package
        case CV_32F: bit_depth = 32; break;
        default: throw chexmask_rt::InputError(path + ": unsupported pixel type; use 8/16-bit or float images");
    }
    chexmask_rt::ImageView v;
    v.data = gray.data;
    v.width = gray.cols;
    v.height = gray.rows;
    v.stride = gray.step;
    v.bit_depth = bit_depth;
    v.size_bytes = gray.step * static_cast<std::size_t>(gray.rows);
    return v;
}

// JSON output: shortest round-trip decimal for every double, like Python's json module.
std::string number(double v) {
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

/// The length of the valid UTF-8 sequence at s[i] (1-4), or 0 where none starts there.
std::size_t utf8_length(const std::string& s, std::size_t i) {
    auto at = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
    auto follows = [&](std::size_t k) { return (at(k) & 0xC0u) == 0x80u; };
    const unsigned c = at(0);
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return follows(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {  // no overlong form, no surrogate
        const unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return at(1) >= lo && at(1) <= hi && follows(2) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {  // at most U+10FFFF
        const unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return at(1) >= lo && at(1) <= hi && follows(2) && follows(3) ? 4 : 0;
    }
    return 0;
}

/// A JSON string. A byte that is not UTF-8 (a file name from an old archive) is written as Python's
/// json module writes the name `chexmask-rt predict` read: \udcXX, so the JSON stays valid and names
/// the same bytes.
std::string quoted(const std::string& s) {
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_length(s, i);
        const auto c = static_cast<unsigned char>(s[i]);
        char esc[8];
        if (n == 0 || c < 0x20) {
            std::snprintf(esc, sizeof esc, n == 0 ? "\\udc%02x" : "\\u%04x", c);
            out += esc;
            ++i;
        } else if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
            ++i;
        } else {
            out.append(s, i, n);
            i += n;
        }
    }
    return out + "\"";
}

/// A field's values: a list of numbers (one column) or of [x, y] pairs.
std::string values(const chexmask_rt::FieldValues& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.rows; ++i) {
        out += i ? ", " : "";
        if (v.columns == 1) {
            out += number(v.data[i]);
            continue;
        }
        out += "[";
        for (std::size_t c = 0; c < v.columns; ++c) out += (c ? ", " : "") + number(v.data[i * v.columns + c]);
        out += "]";
    }
    return out + "]";
}

std::string to_json(const chexmask_rt::Result& r, const std::string& image, const std::string& model_id) {
    std::ostringstream o;
    o << "{\n \"image\": " << quoted(image) << ",\n \"height\": " << r.height << ",\n \"width\": " << r.width
      << ",\n \"samples\": " << r.samples << ",\n \"seed\": " << r.seed << ",\n \"bit_depth\": " << r.bit_depth
      << ",\n \"model\": " << quoted(model_id)
      << ",\n \"intended_use\": " << quoted(chexmask_rt::kIntendedUse);
    // one decode's std is 0 because nothing spreads, not because the model is sure: its spreads are null
    const bool measured = r.spread_measured();
    // every field of the schema table (result_fields.def) that it marks for the JSON and the result has
    const auto& fields = chexmask_rt::result_fields();
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const chexmask_rt::FieldValues v = chexmask_rt::field_values(r, i);
        if (!fields[i].json || v.rows == 0) continue;
        const bool unmeasured = !measured && fields[i].kind == chexmask_rt::FieldKind::Spread;
        o << ",\n \"" << fields[i].name << "\": " << (unmeasured ? "null" : values(v));
    }
    o << ",\n \"node_uncertainty\": "
      << (measured ? values({r.node_uncertainty.data(), r.node_uncertainty.size(), 1}) : "null")
      << ",\n \"scores\": {\"mean_node_std\": " << (measured ? number(r.mean_node_std) : "null")
      << ", \"mean_latent_sigma\": " << number(r.mean_latent_sigma) << "}";
    if (const auto& s = r.second_look) {
        o << ",\n \"second_look\": {\"look\": " << quoted(s->look) << ", \"first_fill\": " << number(s->first_fill);
        if (s->look != "none") {
            o << ", \"crop_left\": " << s->crop_left << ", \"crop_top\": " << s->crop_top
              << ", \"crop_side\": " << s->crop_side;
        }
        o << "}";
    }
    o << ",\n \"quality\": {\"flag\": " << (r.quality.flag ? "true" : "false") << ", \"reason\": "
      << quoted(r.quality.reason) << ", \"calibrated\": " << (r.quality.calibrated ? "true" : "false") << "}";
    o << "\n}";
    return o.str();
}

/// Exit code of one image's failure, as the Python CLI's.
int exit_code_of(const std::exception& e) {
    return dynamic_cast<const chexmask_rt::ModelError*>(&e) != nullptr ? kExitModel : kExitInput;
}

}  // namespace

int main(int argc, char** argv) {
    const Args args = parse_args(argc, argv);
    set_pixel_limit();
    std::optional<chexmask_rt::Engine> engine;
    try {
        chexmask_rt::EngineOptions options;
        options.onnxruntime_library = args.onnxruntime;
        options.intra_op_threads = args.threads;
        options.device = args.device;
        engine.emplace(args.model, options);
    } catch (const std::exception& e) {  // chexmask_rt::Error, or std::bad_alloc
        std::cerr << "chexmask-rt-cpp: error: " << e.what() << "\n";
        return exit_code_of(e);
    }
    // Each image on its own: one that fails is named and the others still get their answers.
    std::vector<std::string> objects;
    int failed_code = 0;
    for (const std::string& path : args.images) {
        try {
            const cv::Mat gray = read_gray(path);  // owns the pixels the view points at
            const chexmask_rt::Result r = engine->predict(view_of(gray, path), args.samples, args.seed, args.second_look);
            objects.push_back(to_json(r, path, engine->info().id()));
        } catch (const std::bad_alloc&) {
            std::cerr << "chexmask-rt-cpp: error: " << path << ": out of memory\n";
            failed_code = kExitInput;
        } catch (const std::exception& e) {  // chexmask_rt::Error (the core's say "image"), cv::Exception
            std::string what = e.what();
            if (what.rfind("image: ", 0) == 0) what.erase(0, 7);  // the core names no file
            std::cerr << "chexmask-rt-cpp: error: " << (what.rfind(path + ":", 0) == 0 ? what : path + ": " + what) << "\n";
            failed_code = exit_code_of(e);
        }
    }
    if (args.images.size() == 1) {
        if (!objects.empty()) std::cout << objects[0] << "\n";
    } else {
        std::cout << "[\n";
        for (std::size_t i = 0; i < objects.size(); ++i) std::cout << objects[i] << (i + 1 < objects.size() ? ",\n" : "\n");
        std::cout << "]\n";
    }
    if (!std::cout.flush()) return kExitInput;
    if (failed_code == 0) return 0;
    return args.images.size() == 1 ? failed_code : kExitSomeFailed;
}
