#include "internal.hpp"

#include <string>

namespace chexmask_rt {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::unique_ptr<detail::Backend> open_backend(const std::string& path, const EngineOptions& options) {
    if (ends_with(path, ".plan") || ends_with(path, ".engine")) {
#ifdef CHEXMASK_RT_WITH_TENSORRT
        return detail::open_tensorrt(path, options);
#else
        throw ModelError(path + ": a TensorRT engine, but this build has no TensorRT backend "
                                "(configure with -DCHEXMASK_RT_WITH_TENSORRT=ON)");
#endif
    }
    return detail::open_onnxruntime(path, options);
}

void check_samples(int samples) {
    if (samples < 1 || samples > kMaxSamples) {
        throw InputError("samples must be an integer in 1.." + std::to_string(kMaxSamples) + ", got " +
                         std::to_string(samples));
    }
}

}  // namespace

struct Engine::Impl {
    std::unique_ptr<detail::Backend> backend;
};

Engine::Engine(const std::string& model_path, const EngineOptions& options)
    : impl_(std::make_unique<Impl>(Impl{open_backend(model_path, options)})) {}

Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

const ModelInfo& Engine::info() const { return impl_->backend->info(); }

Result Engine::predict(const ImageView& image, int samples, std::uint64_t seed) const {
    return predict_batch({image}, samples, seed).front();
}

std::vector<Result> Engine::predict_batch(const std::vector<ImageView>& images, int samples, std::uint64_t seed) const {
    check_samples(samples);
    if (images.empty()) throw InputError("predict_batch: no images");
    const ModelInfo& info = impl_->backend->info();
    const std::size_t plane = static_cast<std::size_t>(info.inputsize) * info.inputsize;
    for (const ImageView& image : images) detail::validate_image(image);  // refuse before any work

    std::vector<float> input(plane * images.size());  // the engine input [B, 1, S, S], filled in place
    std::vector<detail::Letterbox> frames;
    frames.reserve(images.size());
    for (std::size_t b = 0; b < images.size(); ++b) {
        frames.push_back(detail::preprocess_into(images[b], info.inputsize, input.data() + b * plane));
    }
    const std::vector<float> eps = latent_noise(samples, info.latents, seed);
    const int batch = static_cast<int>(images.size());
    const detail::EngineOutputs out = impl_->backend->run(input.data(), batch, eps.data(), samples);

    std::vector<Result> results;
    results.reserve(images.size());
    for (int b = 0; b < batch; ++b) results.push_back(detail::postprocess(out, b, frames[b], samples, seed));
    return results;
}

}  // namespace chexmask_rt
