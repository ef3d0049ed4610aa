// chexmask-rt native core: HybridGNet chest X-ray landmarks with uncertainty.
//
//   chexmask_rt::Engine engine("model.onnx", {/*onnxruntime_library=*/"/path/libonnxruntime.so.1"});
//   chexmask_rt::ImageView img{pixels, width, height, stride_bytes, /*bit_depth=*/8};  // 0: infer (uint16)
//   chexmask_rt::Result r = engine.predict(img, /*samples=*/50, /*seed=*/0);
//   r.landmarks[i].x, r.landmarks_std[i].y, r.mean_node_std ...
//
// For engines that ask for it (ModelInfo::second_look; the shipped default model
// does not, since version 8), predict() makes two engine calls: the image, then a
// square crop around the first answer's lungs (the "second look", see
// Result::second_look). Pass second_look = true or false to choose; false is one
// call, in half the time.
//
// Numbers match the Python package (`chexmask_rt.load(...).predict`) for the
// same engine, image, samples and seed. Every failure but running out of memory
// (std::bad_alloc) is a chexmask_rt::Error: InputError for a bad image or argument,
// ModelError for an engine file, an engine option or a runtime library that cannot
// be used (NonFiniteOutputError: NaN, infinity or an impossible value in one image's answer). Every
// result carries the reliability flag, Result::quality.
// An Engine is safe to share between threads. The first Engine opened sets
// ORT_DISABLE_TELEMETRY=1 in the environment unless it is set (ONNX Runtime's telemetry is off).
#pragma once

#include <chexmask_rt/api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace chexmask_rt {

/// Base of every error this library throws.
class CHEXMASK_RT_API Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// An image or an argument that cannot be segmented; the message says why.
class CHEXMASK_RT_API InputError : public Error {
public:
    using Error::Error;
};

/// An engine file, an engine option, or the runtime library that runs it, that cannot be used.
class CHEXMASK_RT_API ModelError : public Error {
public:
    using Error::Error;
};

/// The engine returned NaN, infinity or an impossible value (a negative spread, landmarks a thousand
/// image sizes away) for one image: a faulty engine. predict_batch throws it for the whole list
/// (index() names the image); callers that predict images one by one lose that image's answer
/// only, and may record it and go on.
class CHEXMASK_RT_API NonFiniteOutputError : public ModelError {
public:
    /// `reason` says what was wrong, `index` is the image's position in predict_batch's list; the
    /// message names that position unless `alone` (the image predict was given).
    NonFiniteOutputError(std::size_t index, const std::string& reason, bool alone = false)
        : ModelError(alone ? reason : "image " + std::to_string(index) + " of the batch: " + reason), index_(index),
          reason_(reason) {}
    std::size_t index() const noexcept { return index_; }
    /// The message without the image's position, for callers that name the image themselves.
    const std::string& reason() const noexcept { return reason_; }

private:
    std::size_t index_;
    std::string reason_;
};

/// What every output of this library is for; results written for people or systems say it
/// (the Python package: chexmask_rt.notice.INTENDED_USE, the same text).
constexpr const char* kIntendedUse = "research use only; not for diagnosis";

/// This library's version: the repository's VERSION file, compiled in ("major.minor.patch").
CHEXMASK_RT_API const char* version() noexcept;

constexpr int kMinSide = 32;         ///< smaller images are refused (as in Python)
constexpr int kMaxSide = 65536;      ///< larger images are refused
constexpr int kMaxSamples = 10000;   ///< upper bound of `samples` (as in Python)
constexpr int kMaxIntraOpThreads = 256;  ///< upper bound of EngineOptions::intra_op_threads
/// The second look's crop: a square in which the first answer's lungs span this share of the side.
constexpr double kSecondLookFill = 0.8;
/// First answers whose lungs span less than this share of the image (a wide field of view)
/// are replaced by the crop's answer instead of pooled with it.
constexpr double kCropOnlyBelow = 0.7;

/// A grayscale image in caller-owned memory; it is read, never copied whole.
struct ImageView {
    const void* data = nullptr;   ///< first pixel of the first row, aligned to the pixel's size (as is stride)
    int width = 0;
    int height = 0;
    std::size_t stride = 0;       ///< bytes from one row to the next (>= width * bytes per pixel)
    /// 8: uint8 pixels (full scale 255). 9..16: uint16 pixels with that many significant bits
    /// (full scale 2^bit_depth - 1; pixels above it are an InputError). 32: float32 already in [0, 1].
    /// 0: uint16 pixels whose depth is inferred from the largest value: the fewest bits that hold
    /// it, and content <= 255 takes the uint8 path exactly (the Python package's default).
    /// Give the detector's real depth: 12-bit pixels passed as 16 reach the model at 1/16 of their
    /// brightness, and with 0 a dark 12-bit exposure (brightest pixel below 2048) reads as 11-bit,
    /// twice as bright (landmarks moved ~3 px on one radiograph).
    int bit_depth = 8;
    /// Size of the buffer behind `data` in bytes, checked when non-zero; pass it if you know it.
    std::size_t size_bytes = 0;
};

/// One organ's contour: `count` consecutive landmarks, in the order of ModelInfo::organs.
struct Organ {
    std::string name;
    int count = 0;
};

/// What an engine file says about itself (ONNX metadata `chexmask_rt.*`), checked against its graph:
/// the counts are the graph's own input/output shapes, and the metadata must agree with them.
struct ModelInfo {
    int format_version = 0;
    int inputsize = 0;            ///< S: the engine's square input side (32..4096, a multiple of 32)
    int latents = 0;              ///< width of the latent noise eps (1..65536)
    int landmarks = 0;            ///< landmarks per result: the sum of the organs' counts
    /// The contours, in landmark order (metadata chexmask_rt.organs, "name:count,..."; without it the
    /// HybridGNet anatomy right_lung:44, left_lung:50, heart:26, which needs a 120-landmark graph).
    std::vector<Organ> organs;
    bool skip = false;
    bool trained = true;
    bool has_samples_output = false;  ///< the graph has the per-sample decodes (the table's Samples field)
    std::string checkpoint_sha256;
    std::string landmark_offsets_sha256;  ///< "" when the engine adds no per-landmark offsets
    std::string model_name;
    std::string model_version;
    std::string description;
    /// predict()'s default second look for this engine (metadata chexmask_rt.second_look, written
    /// by `chexmask-rt export --second-look` for models it was measured to help).
    bool second_look = false;
    std::map<std::string, std::string> metadata;  ///< every custom metadata entry of the file, as stored
    /// "<model_name>:<model_version>", as written in results.
    std::string id() const { return model_name + ":" + model_version; }
};

/// Validates engine metadata alone, without opening the graph (for tools that must not build a
/// session); `landmarks` is then what the organs say. Throws ModelError naming `source`.
CHEXMASK_RT_API ModelInfo parse_model_info(const std::map<std::string, std::string>& metadata,
                                           const std::string& source);

struct Point {
    double x = 0.0;
    double y = 0.0;
};

/// How a second look made an answer (Python: chexmask_rt.SecondLook).
struct SecondLook {
    /// "pooled": both looks' samples pooled (landmarks: their mean; std: the std of all
    /// 2 x samples decodes; mu-decode and latents: the two looks' averages).
    /// "crop_only": a wide field of view; the crop's answer alone.
    /// "none": the crop could not be an image (under kMinSide, or over twice the image's longer
    /// side); the first answer alone, crop_* are 0. It does not happen on radiographs.
    std::string look;
    double first_fill = 0.0;   ///< how far the first answer's lungs span the image: the larger of their
                               ///< box's width / image width and height / image height
    int crop_left = 0;         ///< the crop square, in original pixels (may reach past the image:
    int crop_top = 0;          ///< that part is black, as the letterbox pads)
    int crop_side = 0;
};

/// What a field of result_fields.def holds (the table's kind column).
enum class FieldKind { Position, Spread, Vector, Samples };
/// Whether every engine has the field's output (the table's need column).
enum class FieldNeed { Required, Optional };
/// How a pooled second look combines the two looks' values (the table's two_looks column).
enum class TwoLooks { Mean, PooledStd, Concat };

/// A Result field's storage: points (x, y) for landmark kinds, one double per latent for Vector.
template <FieldKind kind>
using FieldStorage = std::conditional_t<kind == FieldKind::Vector, std::vector<double>, std::vector<Point>>;

/// One row of result_fields.def.
struct FieldInfo {
    const char* name;
    const char* output;       ///< the engine output it is read from
    FieldKind kind;
    const char* unit;         ///< "px" or ""
    FieldNeed need;
    TwoLooks two_looks;
    const char* pooled_with;  ///< PooledStd: its mean field; else its own name
    bool json;                ///< written in the JSON
    const char* csv;          ///< its results.csv column, "" for none
    const char* doc;
};

/// The engine-output fields of a Result, in the table's order.
CHEXMASK_RT_API const std::vector<FieldInfo>& result_fields();
/// "position", "spread", "vector" or "samples": a kind as the C API and Python name it.
CHEXMASK_RT_API const char* kind_name(FieldKind kind) noexcept;
/// "mean", "pooled_std" or "concat": a combine rule as the C API and Python name it.
CHEXMASK_RT_API const char* two_looks_name(TwoLooks rule) noexcept;

/// The reliability flag: is this result's uncertainty outside what the model shows on chest
/// radiographs? Two image scores, the mean node std in the 1024 frame and the mean latent sigma,
/// are compared with thresholds calibrated for the engine's checkpoint (the sidecar file
/// `<engine stem>.quality.json`, EngineOptions::quality_file; benchmarks/calibrate_quality.py).
struct Quality {
    bool flag = false;        ///< true: an uncertainty score exceeds its threshold; review before trusting
    std::string reason;       ///< which scores, against which thresholds; or why there is no flag
    bool calibrated = false;  ///< false: no thresholds for this checkpoint, so `flag` is always false
};

/// The answer for one image, in the original image's pixels: x is the column, y the row (down), and
/// (0, 0) is the centre of the top-left pixel, as NumPy and OpenCV index pixels.
struct Result {
    // The engine-output fields, one member per line of <chexmask_rt/result_fields.def>, which
    // documents them: landmarks, landmarks_std, landmarks_mu (one Point per landmark), latent_mu,
    // latent_sigma (one double per latent), landmark_samples (samples x landmarks Points,
    // sample-major; empty unless the engine was exported with --samples-output; after a pooled
    // second look both looks', 2 x samples).
#define CHEXMASK_RT_FIELD(name, output, kind, ...) FieldStorage<FieldKind::kind> name;
#include <chexmask_rt/result_fields.def>
#undef CHEXMASK_RT_FIELD
    std::vector<double> node_uncertainty;  ///< (std_x + std_y) / 2 per landmark
    double mean_node_std = 0.0;         ///< mean of node_uncertainty: the image's uncertainty score
    double mean_latent_sigma = 0.0;     ///< mean of latent_sigma
    int height = 0;
    int width = 0;
    int samples = 0;
    std::uint64_t seed = 0;
    /// The bit depth the pixels were scaled by (given, or inferred from the largest value): 8 (uint8,
    /// or uint16 content <= 255), 9..16, or 32 (float32 in [0, 1]). A 12-bit image read as 16 reaches
    /// the model at 1/16 of its brightness: this says which it was.
    int bit_depth = 0;
    /// Set when a second look was asked for (predict's second_look); empty otherwise.
    std::optional<SecondLook> second_look;
    /// The reliability flag of this (final) answer, set on every result predict() returns.
    Quality quality;

    /// Whether landmarks_std, node_uncertainty and mean_node_std measure a spread: false for one
    /// decode (samples 1 without a pooled second look), whose std is 0 because there is nothing to
    /// spread, not because the model is sure. The JSON writes them as null then.
    bool spread_measured() const noexcept {
        return samples > 1 || (second_look && second_look->look == "pooled");
    }
};

/// A field's values as flat doubles: `rows` x `columns` (columns 2 for points (x, y), 1 for Vector).
struct FieldValues {
    const double* data = nullptr;
    std::size_t rows = 0;
    std::size_t columns = 0;
};

/// The values of field `index` of result_fields() in `result` (empty for an absent Optional field);
/// throws InputError for an index past the table.
CHEXMASK_RT_API FieldValues field_values(const Result& result, std::size_t index);

struct EngineOptions {
    /// Path of libonnxruntime.so.1.*; empty: $CHEXMASK_RT_ONNXRUNTIME_LIBRARY, else the one linked
    /// at build time (ONNXRUNTIME_ROOT builds), else "libonnxruntime.so.1" from the dynamic loader's
    /// search path. The first Engine
    /// created in a process fixes the library for the whole process.
    std::string onnxruntime_library;
    /// Intra-op threads of the engine, 1..kMaxIntraOpThreads; 0: one per physical core the process
    /// may use (its CPU affinity, at most its cgroup's CPU quota). Any other value is a ModelError.
    int intra_op_threads = 0;
    /// ONNX Runtime's layout optimisations (graph level ALL instead of EXTENDED): on x86
    /// they run convolutions in the NCHWc blocked layout, but the per-image normalisations
    /// force a reorder back after every convolution, so on the 2-core benchmark machine
    /// they were no faster (benchmarks/results/latest.md, "engine settings").
    bool layout_optimizations = false;
    /// ONNX Runtime's memory pattern (one pre-planned block per input shape). Off, the
    /// arena reuses buffers as they free: peak RSS at 1024 fell by about a third with
    /// no measurable change in latency.
    bool memory_pattern = false;
    /// Where the engine runs, through ONNX Runtime's execution providers: "cpu"; "cuda" (CUDA
    /// provider); "tensorrt" (TensorRT provider, CUDA for what TensorRT leaves, then CPU). The
    /// ONNX Runtime library must have the provider (onnxruntime-gpu, JetPack's build), else
    /// ModelError says what is missing. Not tested on a GPU here (cpp/README.md).
    std::string device = "cpu";
    /// device "tensorrt": folder where the TensorRT provider keeps the engines it builds (built
    /// once per model, input shape, TensorRT version and GPU; minutes on a Jetson); empty: none kept.
    std::string tensorrt_cache_dir;
    /// Images per engine call in predict_batch: a longer list runs as several calls, in order.
    /// 0: automatic, one image per call on "cpu" and the whole list on "cuda"/"tensorrt". On the
    /// CPU single images were the fastest (2 cores, K = 50: batched calls gave 0.80-0.84x the
    /// images/s, README "Batches"), need the least memory, and give every image exactly the answer
    /// it gets alone; a GPU has the parallelism to gain from a batch (not measured here).
    int images_per_call = 0;
    /// The quality calibration (Result::quality). Empty: `<model stem>.quality.json` beside the model
    /// file, when there is one (for a symbolic link without one: beside the file it names; none for
    /// Engine::from_memory); results of an engine without
    /// thresholds say "not calibrated". A file named here but missing or malformed is a ModelError.
    std::string quality_file;
    /// The model file's SHA-256 as 64 hex digits (what `sha256sum` prints), to open only that file;
    /// any other bytes are a ModelError. Empty: the engine is checked against the SHA-256 its
    /// export recorded in it (metadata chexmask_rt.integrity_sha256), or, where it records none
    /// (older exports, the shipped default engine), against the one `<model file>.sha256` beside it
    /// (or beside the file a symbolic link names) lists (sha256sum's form), so a damaged file is
    /// refused rather than run.
    std::string expected_sha256;
};

/// A loaded engine. Thread-safe: predict() may run concurrently on one Engine. Do not fork() while
/// a call is running (the child inherits ONNX Runtime's locks held). A moved-from Engine
/// may only be assigned to or destroyed; its other calls throw ModelError ("the engine was moved from").
class CHEXMASK_RT_API Engine {
public:
    /// Opens an ONNX file written by `chexmask-rt export`; throws ModelError if it is not one.
    explicit Engine(const std::string& model_path, const EngineOptions& options = {});
    /// The same from the file's bytes in memory (read during the call; they need not outlive it).
    static Engine from_memory(const void* model_data, std::size_t model_size, const EngineOptions& options = {});
    ~Engine();
    Engine(Engine&&) noexcept;
    Engine& operator=(Engine&&) noexcept;
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    const ModelInfo& info() const;
    /// ONNX Runtime execution providers the session was created with, in priority order
    /// (e.g. {"CUDAExecutionProvider", "CPUExecutionProvider"}).
    const std::vector<std::string>& providers() const;

    /// Segments one image with `samples` latent draws of noise fixed by `seed`; with a
    /// second look (default: info().second_look), a second engine call on a crop around the
    /// lungs (header comment). Memory grows with `samples`: about 0.3 MB each with the shipped
    /// model (peak RSS of a small program: 90 MB at 50 samples, 3.4 GB at kMaxSamples).
    Result predict(const ImageView& image, int samples, std::uint64_t seed,
                   std::optional<bool> second_look = std::nullopt) const;

    /// Segments several images, EngineOptions::images_per_call to an engine call (the crops of a
    /// second look are a second round of calls); they share one eps. Every image is checked before
    /// any work; a bad one is an InputError that names its position ("image 1: ..."). All or
    /// nothing: a NonFiniteOutputError for one image throws away the list's other results too
    /// (predict them one by one to keep them). An empty list is an InputError.
    std::vector<Result> predict_batch(const std::vector<ImageView>& images, int samples,
                                      std::uint64_t seed, std::optional<bool> second_look = std::nullopt) const;

private:
    struct Impl;
    explicit Engine(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// Severity of a log message: ONNX Runtime's levels.
enum class LogLevel { verbose = 0, info = 1, warning = 2, error = 3, fatal = 4 };
using LogCallback = void (*)(LogLevel level, const char* message, void* user);
/// Receives this library's and ONNX Runtime's messages (warnings and worse, plus which ONNX Runtime
/// and providers an Engine uses) from any thread; nullptr (the default) drops them. Process-wide;
/// may be called from any thread. The callback runs outside this library's locks, so it may call the
/// library; an exception it throws is dropped. Once set_log_callback returns, the callback it replaced
/// is no longer running (it waits for deliveries on other threads), so its `user` may be freed; called
/// from within a callback it does not wait.
CHEXMASK_RT_API void set_log_callback(LogCallback callback, void* user = nullptr);

/// The latent noise eps, row-major [samples, latents], float32: SplitMix64 +
/// Box-Muller (generator "splitmix64-boxmuller-v1"; Python: chexmask_rt._core.latent_noise).
/// Throws InputError unless samples is 1..kMaxSamples and latents 1..1048576.
CHEXMASK_RT_API std::vector<float> latent_noise(int samples, int latents, std::uint64_t seed);

/// The filled polygon of (x, y) `polygon` as a row-major height x width mask of 0 and 255: an organ's
/// mask from its landmarks (Python: chexmask_rt.rle.polygon_mask; the CSV's RLE and the mask files).
/// Byte-identical to cv::fillPoly with an 8-connected outline, the vertices first clamped to
/// +-4 * max(height, width) and truncated toward zero. Throws InputError for an empty polygon, a
/// non-finite point, or a side outside 1..kMaxSide.
CHEXMASK_RT_API std::vector<std::uint8_t> polygon_mask(const std::vector<Point>& polygon, int height, int width);

}  // namespace chexmask_rt
