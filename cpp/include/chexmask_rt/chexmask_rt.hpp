// chexmask-rt native core: HybridGNet chest X-ray landmarks with uncertainty.
//
//   chexmask_rt::Engine engine("model.onnx", {/*onnxruntime_library=*/"/path/libonnxruntime.so.1"});
//   chexmask_rt::ImageView img{pixels, width, height, stride_bytes, /*bit_depth=*/8};
//   chexmask_rt::Result r = engine.predict(img, /*samples=*/50, /*seed=*/0);
//   r.landmarks[i].x, r.landmarks_std[i].y, r.mean_node_std ...
//
// For engines that ask for it (ModelInfo::second_look; the shipped default model
// does), predict() makes two engine calls: the image, then a square crop around
// the first answer's lungs (the "second look", see Result::second_look). Pass
// second_look = true or false to choose; false is one call, in half the time.
//
// Numbers match the Python package (`chexmask_rt.load(...).predict`) for the
// same engine, image, samples and seed. Every failure is a chexmask_rt::Error:
// InputError for a bad image or argument, ModelError for an engine file or a
// runtime library that cannot be used (NonFiniteOutputError: NaN or infinity in one
// image's answer). Every result carries the reliability flag, Result::quality.
// An Engine is safe to share between threads.
#pragma once

#include <chexmask_rt/api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
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

/// An engine file, or the runtime library that runs it, that cannot be used.
class CHEXMASK_RT_API ModelError : public Error {
public:
    using Error::Error;
};

/// The engine returned NaN or infinity for one image of a batch: a faulty engine. Only that
/// image's answer is lost; callers that segment many images may record it and go on.
class CHEXMASK_RT_API NonFiniteOutputError : public ModelError {
public:
    /// `reason` says what was wrong, `index` is the image's position in predict_batch's list.
    NonFiniteOutputError(std::size_t index, const std::string& reason)
        : ModelError("image " + std::to_string(index) + " of the batch: " + reason), index_(index), reason_(reason) {}
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
/// The second look's crop: a square in which the first answer's lungs span this share of the side.
constexpr double kSecondLookFill = 0.8;
/// First answers whose lungs span less than this share of the image (a wide field of view)
/// are replaced by the crop's answer instead of pooled with it.
constexpr double kCropOnlyBelow = 0.7;

/// A grayscale image in caller-owned memory; it is read, never copied whole.
struct ImageView {
    const void* data = nullptr;   ///< first pixel of the first row
    int width = 0;
    int height = 0;
    std::size_t stride = 0;       ///< bytes from one row to the next (>= width * bytes per pixel)
    /// 8: uint8 pixels (full scale 255). 9..16: uint16 pixels with that many
    /// significant bits (full scale 2^bit_depth - 1). 32: float32 already in [0, 1].
    /// Give the detector's real depth: 12-bit pixels passed as 16 reach the model at 1/16
    /// of their brightness. (The Python package and the example program infer it from the
    /// largest value when they are not told.)
    int bit_depth = 8;
    /// Size of the buffer behind `data` in bytes, checked when non-zero; pass it if you know it.
    std::size_t size_bytes = 0;
};

/// What an engine file says about itself (ONNX metadata `chexmask_rt.*`).
struct ModelInfo {
    int format_version = 0;
    int inputsize = 0;            ///< S: the engine's square input side
    int latents = 0;              ///< width of the latent noise eps
    bool skip = false;
    bool trained = true;
    std::string checkpoint_sha256;
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

struct Point {
    double x = 0.0;
    double y = 0.0;
};

/// How a second look made an answer (Python: chexmask_rt.second_look).
struct SecondLook {
    /// "pooled": both looks' samples pooled (landmarks: their mean; std: the std of all
    /// 2 x samples decodes; mu-decode and latents: the two looks' averages).
    /// "crop_only": a wide field of view; the crop's answer alone.
    /// "none": the crop could not be an image (under kMinSide, or over twice the image's longer
    /// side); the first answer alone, crop_* are 0. It does not happen on radiographs.
    std::string look;
    double first_fill = 0.0;   ///< share of the image the first answer's lungs span
    int crop_left = 0;         ///< the crop square, in original pixels (may reach past the image:
    int crop_top = 0;          ///< that part is black, as the letterbox pads)
    int crop_side = 0;
};

/// The reliability flag: is this result's uncertainty outside what the model shows on chest
/// radiographs? Two image scores, the mean node std in the 1024 frame and the mean latent sigma,
/// are compared with thresholds calibrated for the engine's checkpoint (the sidecar file
/// `<engine stem>.quality.json`, EngineOptions::quality_file; benchmarks/calibrate_quality.py).
struct Quality {
    bool flag = false;        ///< true: an uncertainty score exceeds its threshold; review before trusting
    std::string reason;       ///< which scores, against which thresholds; or why there is no flag
    bool calibrated = false;  ///< false: no thresholds for this checkpoint, so `flag` is always false
};

/// The answer for one image, in the original image's pixels.
struct Result {
    std::vector<Point> landmarks;       ///< mean over the latent samples (120)
    std::vector<Point> landmarks_std;   ///< per-coordinate std over the samples, ddof 0 (120)
    std::vector<Point> landmarks_mu;    ///< decode at z = mu (120)
    std::vector<double> latent_mu;      ///< encoder mean (latents)
    std::vector<double> latent_sigma;   ///< encoder sigma (latents)
    std::vector<double> node_uncertainty;  ///< (std_x + std_y) / 2 per landmark (120)
    double mean_node_std = 0.0;         ///< mean of node_uncertainty: the image's uncertainty score
    double mean_latent_sigma = 0.0;     ///< mean of latent_sigma
    int height = 0;
    int width = 0;
    int samples = 0;
    std::uint64_t seed = 0;
    /// Set when a second look was asked for (predict's second_look); empty otherwise.
    std::optional<SecondLook> second_look;
    /// The decoded samples, sample-major (samples x 120), only from an engine exported with
    /// --samples-output (after a pooled second look: both looks', 2 x samples); empty otherwise.
    /// Per-sample measures (the CTR's std, Python: chexmask_rt.measures) need them.
    std::vector<Point> landmark_samples;
    /// The reliability flag of this (final) answer, set on every result predict() returns.
    Quality quality;
};

struct EngineOptions {
    /// Path of libonnxruntime.so.1.*; empty: $CHEXMASK_RT_ONNXRUNTIME_LIBRARY, else
    /// "libonnxruntime.so.1" from the dynamic loader's search path. The first Engine
    /// created in a process fixes the library for the whole process.
    std::string onnxruntime_library;
    /// Intra-op threads of the engine; 0: one per physical core.
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
    /// The quality calibration (Result::quality). Empty: `<model stem>.quality.json` beside the model
    /// file, when there is one (none for Engine::from_memory); results of an engine without
    /// thresholds say "not calibrated". A file named here but missing or malformed is a ModelError.
    std::string quality_file;
};

/// A loaded engine. Thread-safe: predict() may run concurrently on one Engine.
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
    /// lungs (header comment).
    Result predict(const ImageView& image, int samples, std::uint64_t seed,
                   std::optional<bool> second_look = std::nullopt) const;

    /// Segments several images in one engine call (two with `second_look`: the crops are the
    /// second); they share one eps.
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
/// and providers an Engine uses) from any thread; nullptr (the default) drops them. Process-wide.
CHEXMASK_RT_API void set_log_callback(LogCallback callback, void* user = nullptr);

/// The latent noise eps, row-major [samples, latents], float32: SplitMix64 +
/// Box-Muller, bit-identical to Python's chexmask_rt.sampling.latent_noise.
CHEXMASK_RT_API std::vector<float> latent_noise(int samples, int latents, std::uint64_t seed);

/// The filled polygon of (x, y) `polygon` as a row-major height x width mask of 0 and 255: an organ's
/// mask from its landmarks (Python: chexmask_rt.rle.polygon_mask; the CSV's RLE and the mask files).
/// Byte-identical to cv::fillPoly with an 8-connected outline, the vertices first clamped to
/// +-4 * max(height, width) and truncated toward zero. Throws InputError for an empty polygon, a
/// non-finite point, or a side outside 1..kMaxSide.
CHEXMASK_RT_API std::vector<std::uint8_t> polygon_mask(const std::vector<Point>& polygon, int height, int width);

}  // namespace chexmask_rt
