// Engine outputs -> original pixels, field by field as result_fields.def's kinds say: points
// through the Letterbox (p_norm * L - pad), spreads scaled (s_norm * L), vectors as they are; in
// double, as the reference (tests/reference/frames.py) computes them.
#include "internal.hpp"

namespace chexmask_rt::detail {
namespace {

double mean(const std::vector<double>& values) {
    double sum = 0.0;
    for (double v : values) sum += v;
    return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

/// `count` points starting at point `first` of `norm`, back to original pixels as `kind` says.
std::vector<Point> points_to_original(const std::vector<float>& norm, std::size_t first, std::size_t count,
                                      FieldKind kind, const Letterbox& frame) {
    const float* p = norm.data() + first * 2;
    std::vector<Point> out(count);
    for (std::size_t i = 0; i < count; ++i) {
        const Point q{p[2 * i], p[2 * i + 1]};
        out[i] = kind == FieldKind::Spread ? frame.scale_to_original(q) : frame.to_original(q);  // a spread is a length
    }
    return out;
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
    std::size_t k = 0;
    for_each_field([&](const FieldInfo& field, auto member, auto) {
        const std::vector<float>& values = out.fields[k++];
        if (values.empty()) return;  // an Optional output this engine does not have
        auto& target = r.*member;
        const auto b = static_cast<std::size_t>(index);
        if constexpr (std::is_same_v<std::decay_t<decltype(target)>, std::vector<double>>) {
            const float* p = values.data() + b * out.latents;
            target.assign(p, p + out.latents);
        } else {
            const std::size_t rows = field.kind == FieldKind::Samples ? static_cast<std::size_t>(out.samples) : 1;
            const std::size_t count = rows * out.nodes;
            target = points_to_original(values, b * count, count, field.kind, frame);
        }
    });
    set_scores(r);
    r.height = frame.height;
    r.width = frame.width;
    r.samples = samples;
    r.seed = seed;
    return r;
}

}  // namespace chexmask_rt::detail
