// Engine outputs -> original pixels (runtime/chexmask_rt/frames.py and result.py):
// p = p_norm * L - pad, std = std_norm * L, in double like the Python path.
#include "internal.hpp"

namespace chexmask_rt::detail {
namespace {

std::vector<Point> to_original(const std::vector<float>& norm, int index, int nodes, const Letterbox& frame) {
    const float* p = norm.data() + static_cast<std::size_t>(index) * nodes * 2;
    std::vector<Point> out(nodes);
    for (int i = 0; i < nodes; ++i) out[i] = frame.to_original({p[2 * i], p[2 * i + 1]});
    return out;
}

std::vector<Point> scale_to_original(const std::vector<float>& norm, int index, int nodes, const Letterbox& frame) {
    const float* p = norm.data() + static_cast<std::size_t>(index) * nodes * 2;
    std::vector<Point> out(nodes);
    for (int i = 0; i < nodes; ++i) out[i] = frame.scale_to_original({p[2 * i], p[2 * i + 1]});
    return out;
}

std::vector<double> row_as_double(const std::vector<float>& values, int index, int width) {
    const float* p = values.data() + static_cast<std::size_t>(index) * width;
    return std::vector<double>(p, p + width);
}

double mean(const std::vector<double>& values) {
    double sum = 0.0;
    for (double v : values) sum += v;
    return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

}  // namespace

void set_scores(Result& r) {
    r.node_uncertainty.clear();
    r.node_uncertainty.reserve(r.landmarks_std.size());
    for (const Point& s : r.landmarks_std) r.node_uncertainty.push_back((s.x + s.y) / 2.0);
    r.mean_node_std = mean(r.node_uncertainty);
    r.mean_latent_sigma = mean(r.latent_sigma);
}

Result postprocess(const EngineOutputs& out, int index, const Letterbox& frame, int samples, std::uint64_t seed) {
    Result r;
    r.landmarks = to_original(out.landmarks_mean, index, out.nodes, frame);
    r.landmarks_std = scale_to_original(out.landmarks_std, index, out.nodes, frame);
    r.landmarks_mu = to_original(out.landmarks_mu, index, out.nodes, frame);
    r.latent_mu = row_as_double(out.latent_mu, index, out.latents);
    r.latent_sigma = row_as_double(out.latent_sigma, index, out.latents);
    for (int k = 0; k < out.samples; ++k) {  // row k of image `index` is laid out like one image's landmarks
        const std::vector<Point> decoded = to_original(out.landmarks_samples, index * out.samples + k, out.nodes, frame);
        r.landmark_samples.insert(r.landmark_samples.end(), decoded.begin(), decoded.end());
    }
    set_scores(r);
    r.height = frame.height;
    r.width = frame.width;
    r.samples = samples;
    r.seed = seed;
    return r;
}

}  // namespace chexmask_rt::detail
