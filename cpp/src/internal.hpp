// Internals shared by the library, the pybind module and the C++ tests; not installed.
#pragma once

#include <chexmask_rt/chexmask_rt.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chexmask_rt::detail {

/// The anatomy every engine must produce (Python: anatomy.py): right lung 44, left lung 50, heart 26.
/// Engines are checked against it when they load and on every run, so nothing past it is ever read.
constexpr int kLandmarks = 120;
constexpr int kLungLandmarks = 94;  ///< the lungs: the first landmarks

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

/// Validates `image`, letterboxes it to size x size and writes the scaled
/// float32 pixels to `out` (size * size values): the engine's input for one image.
Letterbox preprocess_into(const ImageView& image, int size, float* out);

/// The same pixels divided by `scale` instead of the bit depth's full scale: 1 keeps the image's
/// own levels (training renders its data in the runtime's frame this way).
Letterbox letterbox_into(const ImageView& image, int size, float scale, float* out);

/// The same for `square` of `image` (black where it leaves the image), never copied out:
/// the second look's crop. Returns the square's own frame (no padding).
Letterbox preprocess_square(const ImageView& image, const Square& square, int size, float* out);

/// Bilinear resize of `window` of a validated image to size x size, as cv::resize INTER_LINEAR of
/// the materialised window would give (resize.cpp), divided by `scale`, written to `out`.
void resize_window(const ImageView& image, const Square& window, int size, float scale, float* out);

/// Bytes of a height x width mask; throws InputError for a side outside 1..kMaxSide (polygon_fill.cpp).
std::size_t polygon_mask_bytes(std::int64_t height, std::int64_t width);
/// chexmask_rt::polygon_mask painted into `zeroed` (height * width caller-owned bytes, all 0 on entry;
/// polygon_fill.cpp). It writes only the polygon's pixels, so a buffer the OS hands out already
/// zeroed (calloc, numpy.zeros) is touched only where the organ lies.
void fill_polygon(const Point* polygon, std::size_t count, int height, int width, std::uint8_t* zeroed);

/// Raw engine outputs for a batch, normalised to [0, 1] of the square.
struct EngineOutputs {
    int batch = 0;
    int nodes = 0;
    int latents = 0;
    std::vector<float> landmarks_mean;  // [batch, nodes, 2]
    std::vector<float> landmarks_std;   // [batch, nodes, 2]
    std::vector<float> landmarks_mu;    // [batch, nodes, 2]
    std::vector<float> latent_mu;       // [batch, latents]
    std::vector<float> latent_sigma;    // [batch, latents]
    int samples = 0;                    // K of landmarks_samples; 0 when the engine has no such output
    std::vector<float> landmarks_samples;  // [batch, samples, nodes, 2] or empty
};

/// Fills node_uncertainty, mean_node_std and mean_latent_sigma from landmarks_std and latent_sigma.
void set_scores(Result& r);

/// Image `index` of a batch back to original pixels, with its uncertainty scores.
Result postprocess(const EngineOutputs& out, int index, const Letterbox& frame, int samples, std::uint64_t seed);

/// The second look (Python: chexmask_rt/second_look.py).
/// The square around `first`'s lungs to look at again, if it can be an image.
std::optional<Square> second_look_square(const Result& first);

/// `first` marked as asked for a second look that had no usable crop (look "none").
Result without_second_look(const Result& first);

/// Both looks' answer in the original image's pixels: pooled, or the crop's alone for a wide field of view.
Result combine(const Result& first, const Result& crop, const Square& square);

/// True when `text` is strict UTF-8, as Python's decoder takes it (metadata entries, JSON files).
bool valid_utf8(std::string_view text);

/// Parses and validates the `chexmask_rt.*` metadata (Python: metadata.ModelInfo.from_metadata).
ModelInfo parse_model_info(const std::map<std::string, std::string>& props, const std::string& source);

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

/// The ONNX Runtime library this process uses ("" before the first Engine).
std::string loaded_onnxruntime_library();

/// Passes `message` to the callback of set_log_callback, if any.
void log(LogLevel level, const std::string& message);

}  // namespace chexmask_rt::detail
