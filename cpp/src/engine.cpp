#include "internal.hpp"
#include "quality.hpp"

#include <filesystem>

#include <algorithm>
#include <functional>
#include <limits>
#include <string>
#include <utility>

namespace chexmask_rt {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::unique_ptr<detail::Backend> open_backend(const std::string& path, const EngineOptions& options) {
    if (ends_with(path, ".plan") || ends_with(path, ".engine")) {
        throw ModelError(path + ": a TensorRT plan; chexmask-rt opens the .onnx engine and runs it on TensorRT "
                                "with device \"tensorrt\" (ONNX Runtime's TensorRT provider builds and caches the plan)");
    }
    return detail::open_onnxruntime(detail::ModelSource{path}, options);
}

void check_samples(int samples) {
    if (samples < 1 || samples > kMaxSamples) {
        throw InputError("samples must be an integer in 1.." + std::to_string(kMaxSamples) + ", got " +
                         std::to_string(samples));
    }
}

/// The options' numbers, refused before any engine work (a ModelError, as every unusable engine setting).
const EngineOptions& checked(const EngineOptions& options) {
    if (options.images_per_call < 0) {
        throw ModelError("images_per_call must be 0 (automatic) or more, got " + std::to_string(options.images_per_call));
    }
    // ONNX Runtime starts all its intra-op threads when the session is made and waits for each: hundreds
    // take seconds, and if the system refuses one the session never returns. No CPU this serves gains
    // from more than the bound (ONNX Runtime's own default is one per physical core).
    if (options.intra_op_threads < 0 || options.intra_op_threads > kMaxIntraOpThreads) {
        throw ModelError("intra_op_threads must be 0 (one per physical core) to " + std::to_string(kMaxIntraOpThreads) +
                         ", got " + std::to_string(options.intra_op_threads));
    }
    if (!options.expected_sha256.empty() && !detail::is_sha256_text(options.expected_sha256)) {
        throw ModelError("expected_sha256 must be 64 hex digits, got '" + detail::shown(options.expected_sha256) + "'");
    }
    return options;
}

/// EngineOptions::images_per_call resolved: 0 means one image per call on the CPU, all on a GPU.
std::size_t images_per_call(const EngineOptions& options) {
    if (options.images_per_call > 0) return static_cast<std::size_t>(options.images_per_call);
    return options.device == "cpu" ? 1 : std::numeric_limits<std::size_t>::max();
}

/// The engine behind `impl`, or a ModelError for an Engine whose insides were moved to another.
template <typename Impl>
Impl& live(const std::unique_ptr<Impl>& impl) {
    if (impl == nullptr) throw ModelError("the engine was moved from; assign an engine to it before using it");
    return *impl;
}

}  // namespace

// A nested class takes its exported class's visibility: hidden here, so the library exports the
// headers' API and not the implementation's members.
struct __attribute__((visibility("hidden"))) Engine::Impl {
    std::unique_ptr<detail::Backend> backend;
    std::string name;  ///< the model's file name, or "<memory>": for messages
    detail::QualityAssessor quality;
    std::size_t per_call;  ///< images per engine call

    Impl(std::unique_ptr<detail::Backend> opened, const std::string& model_path, const EngineOptions& options)
        : backend(std::move(opened)),
          name(model_path.empty() ? "<memory>" : std::filesystem::path(model_path).filename().string()),
          quality(detail::load_quality(model_path, options.quality_file, backend->info().checkpoint_sha256)),
          per_call(images_per_call(options)) {}
    /// Writes image `b` of a batch, letterboxed to size x size, to `out` and returns its frame.
    using PrepareOne = std::function<detail::Letterbox(std::size_t b, int size, float* out)>;
    /// `count` images, `per_call` to an engine call: prepare each, run, back to original pixels.
    std::vector<Result> one_look(std::size_t count, const PrepareOne& prepare, int samples, std::uint64_t seed) const;
    /// The answers before the final checks: one look, or two with `second_look`.
    std::vector<Result> looks(const std::vector<detail::Pixels>& pixels, int samples, std::uint64_t seed,
                              bool second_look) const;
};

Engine::Engine(const std::string& model_path, const EngineOptions& options)
    : impl_(std::make_unique<Impl>(open_backend(model_path, checked(options)), model_path, options)) {}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine Engine::from_memory(const void* model_data, std::size_t model_size, const EngineOptions& options) {
    if (model_data == nullptr || model_size == 0) throw InputError("<memory>: no model bytes given");
    const detail::ModelSource source{"<memory>", model_data, model_size};
    return Engine(std::make_unique<Impl>(detail::open_onnxruntime(source, checked(options)), "", options));
}

Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

const ModelInfo& Engine::info() const { return live(impl_).backend->info(); }

const std::vector<std::string>& Engine::providers() const { return live(impl_).backend->providers(); }

Result Engine::predict(const ImageView& image, int samples, std::uint64_t seed,
                       std::optional<bool> second_look) const {
    return predict_batch({image}, samples, seed, second_look).front();
}

std::vector<Result> Engine::Impl::one_look(std::size_t count, const PrepareOne& prepare, int samples,
                                           std::uint64_t seed) const {
    const ModelInfo& info = backend->info();
    const std::size_t plane = static_cast<std::size_t>(info.inputsize) * info.inputsize;
    const std::vector<float> eps = latent_noise(samples, info.latents, seed);
    std::vector<Result> results;
    results.reserve(count);
    std::vector<float> input;  // one call's engine input [B, 1, S, S], filled in place
    std::vector<detail::Letterbox> frames;
    for (std::size_t start = 0; start < count; start += per_call) {
        const std::size_t batch = std::min(per_call, count - start);
        input.resize(plane * batch);
        frames.clear();
        for (std::size_t b = 0; b < batch; ++b) frames.push_back(prepare(start + b, info.inputsize, input.data() + b * plane));
        const detail::EngineOutputs out = backend->run(input.data(), static_cast<int>(batch), eps.data(), samples);
        for (std::size_t b = 0; b < batch; ++b) {
            results.push_back(detail::postprocess(out, static_cast<int>(b), frames[b], samples, seed));
        }
    }
    return results;
}

std::vector<Result> Engine::predict_batch(const std::vector<ImageView>& images, int samples, std::uint64_t seed,
                                          std::optional<bool> second_look) const {
    const Impl& impl = live(impl_);
    check_samples(samples);
    if (images.empty()) throw InputError("predict_batch: no images");
    // every image is validated and its depth settled before any work; a crop keeps its image's depth
    std::vector<detail::Pixels> pixels;
    pixels.reserve(images.size());
    for (std::size_t i = 0; i < images.size(); ++i) {
        try {
            pixels.push_back(detail::resolve_pixels(images[i]));
        } catch (const InputError& e) {
            if (images.size() == 1) throw;
            // the checks say "image: ..."; in a batch the caller needs to know which one
            const std::string what = e.what();
            throw InputError("image " + std::to_string(i) + (what.rfind("image:", 0) == 0 ? what.substr(5) : ": " + what));
        }
    }
    std::vector<Result> results = impl.looks(pixels, samples, seed, second_look.value_or(info().second_look));
    for (std::size_t i = 0; i < results.size(); ++i) results[i].bit_depth = pixels[i].depth;
    detail::check_finite(results, impl.name);
    for (Result& r : results) r.quality = impl.quality.assess(r);
    return results;
}

std::vector<Result> Engine::Impl::looks(const std::vector<detail::Pixels>& pixels, int samples, std::uint64_t seed,
                                        bool second_look) const {
    std::vector<Result> results = one_look(
        pixels.size(), [&](std::size_t b, int size, float* out) { return detail::preprocess_into(pixels[b], size, out); },
        samples, seed);
    if (!second_look) return results;
    const std::vector<Organ>& organs = backend->info().organs;

    std::vector<std::size_t> which;
    std::vector<detail::Square> squares;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (const std::optional<detail::Square> square = detail::second_look_square(results[i], organs)) {
            which.push_back(i);
            squares.push_back(*square);
        } else {
            results[i] = detail::without_second_look(results[i], organs);
        }
    }
    if (which.empty()) return results;
    // each crop is read in place, never copied: a crop of a huge image costs no more than its S x S input
    const std::vector<Result> seconds = one_look(
        which.size(),
        [&](std::size_t k, int size, float* out) { return detail::preprocess_square(pixels[which[k]], squares[k], size, out); },
        samples, seed);
    for (std::size_t k = 0; k < which.size(); ++k) {
        results[which[k]] = detail::combine(results[which[k]], seconds[k], squares[k], organs);
    }
    return results;
}

}  // namespace chexmask_rt
