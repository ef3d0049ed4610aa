// Internals shared by the library, the pybind module and the C++ tests; not installed.
#pragma once

#include <chexmask_rt/chexmask_rt.hpp>

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chexmask_rt::detail {

static_assert(sizeof(Point) == 2 * sizeof(double), "Point must be two packed doubles");

/// A field's values as one run of doubles, in place: points as (x, y) pairs, vectors as they are.
inline const double* flat(const std::vector<Point>& v) { return reinterpret_cast<const double*>(v.data()); }
inline double* flat(std::vector<Point>& v) { return reinterpret_cast<double*>(v.data()); }
inline const double* flat(const std::vector<double>& v) { return v.data(); }
inline double* flat(std::vector<double>& v) { return v.data(); }
/// Doubles per value of a field: 2 for points, 1 for vectors.
template <typename T>
constexpr std::size_t columns_of(const std::vector<T>&) { return sizeof(T) / sizeof(double); }

/// The physical cores this process may use (its CPU affinity, at most its cgroup's CPU quota rounded
/// up) and the machine's; zeros where Linux does not say.
struct CpuShare {
    int usable = 0;
    int machine = 0;
};
CpuShare cpu_share();
/// The CPU quota, in CPUs rounded up (0: none), of the cgroup that ``self`` (the text of
/// /proc/self/cgroup) names, read under ``root`` (/sys/fs/cgroup): cgroup v2's cpu.max, or v1's
/// cpu.cfs_quota_us under root/cpu or root/cpu,cpuacct; the smallest of the cgroup and those above it.
int cgroup_quota_cpus(std::istream& self, const std::string& root);
/// EngineOptions::intra_op_threads 0 resolved: cpu_share().usable, or 0 (ONNX Runtime's default, one
/// per core of the machine) when that is every core.
int default_intra_op_threads();

/// The HybridGNet anatomy, the organs of an engine whose metadata names none: right lung 44,
/// left lung 50, heart 26 (Python: anatomy.py).
const std::vector<Organ>& default_organs();
// What is wrong with a model's name and version as results carry them (`name:version`: not empty,
// no control character or backslash, no ':' in the version), "" when nothing; with ``dicom`` also
// what DICOM outputs cannot carry (a version over 64 characters), which the exporter refuses.
std::string model_id_problem(const std::string& name, const std::string& version, bool dicom);
// `text` as an error message quotes it: control characters escaped, cut between characters after
// about `bytes` bytes and marked "..." (model_info.cpp).
std::string shown(const std::string& text, std::size_t bytes = 80);

/// Geometry of the centred zero-pad to a square of side max(h, w) (Python: _core.Letterbox).
struct Letterbox {
    int height = 0;
    int width = 0;
    int side() const { return height > width ? height : width; }
    int pad_left() const { return (side() - width) / 2; }
    int pad_top() const { return (side() - height) / 2; }
    /// Normalised (x, y) of the square -> original pixels.
    Point to_original(Point p) const { return {p.x * side() - pad_left(), p.y * side() - pad_top()}; }
    /// A normalised length (e.g. a std) -> original pixels: scaled, not moved.
    double scale_to_original(double length) const { return length * side(); }
    Point scale_to_original(Point p) const { return {scale_to_original(p.x), scale_to_original(p.y)}; }
    /// Original pixels -> normalised (x, y) of the square.
    Point to_normalised(Point p) const {
        const double s = side();
        return {(p.x + pad_left()) / s, (p.y + pad_top()) / s};
    }
};

/// A square window onto an image (original pixels; it may reach past the image, where it is black):
/// the letterbox is the window {-pad_left, -pad_top, side}, the second look's crop another.
struct Square {
    int left = 0;
    int top = 0;
    int side = 0;
};

/// Bytes of one pixel at ImageView::bit_depth (throws InputError for an unknown depth).
std::size_t bytes_per_pixel(int bit_depth);

/// Throws InputError unless `image` can be read safely and segmented.
void validate_image(const ImageView& image);

/// A validated image with its depth settled: what preprocessing reads.
struct Pixels {
    ImageView view;        ///< view.bit_depth is the stored pixel type's: 8, 16 (any uint16) or 32
    int depth = 8;         ///< the arithmetic: 8 (uint8, or uint16 content <= 255), 9..16, or 32 (float)
};

/// Validates `image` and settles its bit depth: 0 (uint16) is inferred from the largest value with
/// Python's significant_bits rule; an explicit 9..16 too small for the pixels, or a float image
/// outside [0, 1], is an InputError.
Pixels resolve_pixels(const ImageView& image);

/// The fewest bits (at least 8) that hold the largest value of a uint16 view.
int significant_bits(const ImageView& image16);

/// Letterboxes `image` to size x size and writes the scaled float32 pixels to `out`
/// (size * size values): the engine's input for one image.
Letterbox preprocess_into(const Pixels& image, int size, float* out);

/// The full scale of `image`'s depth (2^depth - 1; 1 for float): what preprocessing divides by.
float full_scale(const Pixels& image);

/// The same pixels divided by `scale` instead of the bit depth's full scale: 1 keeps the image's
/// own levels (training renders its data in the runtime's frame this way).
Letterbox letterbox_into(const Pixels& image, int size, float scale, float* out);

/// The same for `square` of `image` (black where it leaves the image), never copied out:
/// the second look's crop. Returns the square's own frame (no padding).
Letterbox preprocess_square(const Pixels& image, const Square& square, int size, float* out);

/// Bilinear resize of `window` of an image to size x size, as cv::resize INTER_LINEAR of
/// the materialised window would give (resize.cpp), divided by `scale`, written to `out`.
void resize_window(const Pixels& image, const Square& window, int size, float scale, float* out);

/// Bytes of a height x width mask; throws InputError for a side outside 1..kMaxSide (polygon_fill.cpp).
std::size_t polygon_mask_bytes(std::int64_t height, std::int64_t width);
/// chexmask_rt::polygon_mask painted into `out` (height * width caller-owned bytes; polygon_fill.cpp).
/// With `zeroed` (all 0 on entry) it writes only the polygon's pixels, so a buffer the OS hands out
/// already zeroed (calloc, numpy.zeros) is touched only where the organ lies; without, it clears
/// `out` once the points are checked (a refused polygon leaves it as it was).
void fill_polygon(const Point* polygon, std::size_t count, int height, int width, std::uint8_t* out, bool zeroed);

/// A one-component lossless JPEG (SOF3) decoded strictly (lossless_jpeg.cpp): samples row-major,
/// shifted back by the scan's point transform. Damaged data, more than `max_pixels` samples, or a kind
/// it does not read (colour, arithmetic coding, a lossy frame) is an InputError.
struct LosslessImage {
    int width = 0, height = 0, precision = 0;
    std::vector<std::uint16_t> samples;
};
LosslessImage decode_lossless_jpeg(const std::uint8_t* data, std::size_t size, std::int64_t max_pixels);
/// Checks a sequential Huffman DCT JPEG (SOF0/SOF1, 8 or 12 bits) without decoding it (dct_jpeg_check.cpp):
/// entropy-coded data that libjpeg-turbo would fill in with a warning is an InputError ("damaged JPEG: ...").
/// Returns the frame's sample precision.
int check_dct_jpeg(const std::uint8_t* data, std::size_t size);

/// Raw engine outputs for a batch, normalised to [0, 1] of the square.
struct EngineOutputs {
    int batch = 0;
    int nodes = 0;
    int latents = 0;
    int samples = 0;  ///< K of the Samples fields
    /// One float array per field of result_fields(), in the table's order, as the output's shape
    /// (result_fields.def, kind); empty for an Optional output the engine does not have.
    std::vector<std::vector<float>> fields;
};

/// Calls `f(info, member)` for every field of result_fields.def, `member` a pointer to its Result
/// member (std::vector<Point> or std::vector<double>), and `pooled_with` its pooled_with's member.
template <typename F>
void for_each_field(F&& f) {
    std::size_t index = 0;
#define CHEXMASK_RT_FIELD(name, output, kind, unit, need, two_looks, pooled_with, json, csv, doc) \
    f(result_fields()[index++], &Result::name, &Result::pooled_with);
#include <chexmask_rt/result_fields.def>
#undef CHEXMASK_RT_FIELD
}

/// Fills node_uncertainty, mean_node_std and mean_latent_sigma from landmarks_std and latent_sigma.
void set_scores(Result& r);

/// Image `index` of a batch back to original pixels, with its uncertainty scores.
Result postprocess(const EngineOutputs& out, int index, const Letterbox& frame, int samples, std::uint64_t seed);

/// The bounds of an engine's metadata (parse_model_info); the export refuses configs past them too.
inline constexpr int kMaxEngineInputsize = 4096;
inline constexpr int kMaxEngineLatents = 65536;

/// Whether an organ is one the second look frames: those named right_lung and left_lung.
inline bool is_lung(const Organ& organ) { return organ.name == "right_lung" || organ.name == "left_lung"; }

/// The second look (reference: tests/reference/second_look.py). `organs`: the engine's (ModelInfo::organs);
/// the lungs are those `is_lung` names.
/// The square around `first`'s lungs to look at again, if it can be an image.
std::optional<Square> second_look_square(const Result& first, const std::vector<Organ>& organs);

/// `first` marked as asked for a second look that had no usable crop (look "none").
Result without_second_look(const Result& first, const std::vector<Organ>& organs);

/// Both looks' answer in the original image's pixels: pooled, or the crop's alone for a wide field of view.
Result combine(const Result& first, const Result& crop, const Square& square, const std::vector<Organ>& organs);

/// An ONNX graph's declared tensor, as the backend reads it: element type float32 or not, and its
/// dimensions (<= 0: not a fixed size).
struct TensorDecl {
    std::string name;
    bool is_float = false;
    std::vector<std::int64_t> shape;
};

/// What an engine's graph declares: its inputs and outputs in order.
struct GraphDecl {
    std::vector<TensorDecl> inputs, outputs;
};

/// Parses the metadata and checks it against the graph: the one place an engine is validated
/// (model_info.cpp). Counts come from the graph's shapes; the metadata must agree.
ModelInfo parse_model_info(const std::map<std::string, std::string>& props, const GraphDecl& graph,
                           const std::string& source);

/// The dimensions the runtime relies on for tensor `name` of an engine described by `info`
/// (0: any, e.g. batch and samples); empty for a tensor it does not use.
std::vector<std::int64_t> expected_shape(const std::string& name, const ModelInfo& info);

/// A shape as messages write it: "[?, 120, 2]".
std::string shape_text(const std::vector<std::int64_t>& shape);
/// True when `text` is strict UTF-8, as Python's decoder takes it (metadata entries, JSON files).
bool valid_utf8(std::string_view text);

/// Something that runs an engine: images float32 [batch, 1, S, S] + eps float32 [samples, latents].
class Backend {
public:
    virtual ~Backend() = default;
    virtual const ModelInfo& info() const = 0;
    virtual const std::vector<std::string>& providers() const = 0;
    virtual EngineOutputs run(const float* images, int batch, const float* eps, int samples) const = 0;
};

/// Where an engine comes from: a file, or the bytes of one (`data` non-null; `name` labels messages).
struct ModelSource {
    std::string name;
    const void* data = nullptr;
    std::size_t size = 0;
};

std::unique_ptr<Backend> open_onnxruntime(const ModelSource& model, const EngineOptions& options);

/// The metadata entry in which an export records the engine's SHA-256: that of the file as written
/// with this entry's value as 64 '0's (model_integrity.cpp).
inline constexpr char kIntegrityKey[] = "chexmask_rt.integrity_sha256";
/// A second entry saying the engine is sealed ("sha256"), so that damage to the first entry's key,
/// which would hide the seal, is still found: one damaged byte cannot change both.
inline constexpr char kSealedKey[] = "chexmask_rt.integrity";
/// ModelError when the engine's bytes are not the expected file (`expected_sha256`, the whole
/// file's SHA-256; "" for none) or, without one, not what its export recorded, or, for a file that
/// records nothing, not what `<file>.sha256` beside it lists. True when the bytes were checked,
/// false when there was nothing to check them against.
bool check_integrity(const ModelSource& model, const std::string& expected_sha256);
/// An engine's bytes with its kIntegrityKey entry, written as 64 '0's, set to their SHA-256
/// (InputError when the entry is not there exactly once).
std::string sealed_engine(std::string bytes);
/// Whether `text` is a SHA-256 as 64 hex digits (either case).
bool is_sha256_text(const std::string& text);
/// The file the symbolic link `path` names (its canonical path), "" for anything else. An engine's side
/// files (`<model>.sha256`, `<stem>.quality.json`) are looked for beside it where none is beside the
/// link, so a deployment's `current.onnx -> chexmask_v10.onnx` keeps the engine's check and flag.
std::string link_target(const std::string& path);

/// The ONNX Runtime library this process uses ("" before the first Engine).
std::string loaded_onnxruntime_library();

/// An ONNX Runtime error line without the source file, function and status code it starts with
/// ("/onnxruntime_src/...cc:2043 ... [ONNXRuntimeError] : 1 : FAIL : Failed to load library ..."):
/// the reason a provider did not start, as the engine's ModelError quotes it.
std::string without_source_location(const std::string& line);

/// Passes `message` to the callback of set_log_callback, if any (held while a HeldLogs lives).
void log(LogLevel level, const std::string& message);

/// chexmask_rt_log_fn: the C API's callback, whose level is an int.
using CLogCallback = void (*)(int level, const char* message, void* user);
/// set_log_callback for the C API's callback (which replaces the C++ one, and the reverse).
void set_c_log_callback(CLogCallback callback, void* user);

/// While one lives, this thread's messages are held, then delivered when it ends: create it before
/// taking a lock that a callback calling into the library would need.
class HeldLogs {
public:
    HeldLogs();
    ~HeldLogs();
    HeldLogs(const HeldLogs&) = delete;
    HeldLogs& operator=(const HeldLogs&) = delete;

private:
    std::vector<std::pair<LogLevel, std::string>> messages_;
    std::vector<std::pair<LogLevel, std::string>>* outer_;
};

}  // namespace chexmask_rt::detail
