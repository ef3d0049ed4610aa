// The second look, in the same double arithmetic as runtime/chexmask_rt/second_look.py:
// crop a square around the first answer's lungs, predict on it, pool the two answers.
#include "internal.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace chexmask_rt::detail {
namespace {

struct Box {
    double min_x, min_y, max_x, max_y;
    double width() const { return max_x - min_x; }
    double height() const { return max_y - min_y; }
};

// Engines are checked for kLandmarks when they load and on every run; this keeps a result made
// any other way from being read past its end.
void check_landmarks(const Result& r) {
    if (r.landmarks.size() != static_cast<std::size_t>(kLandmarks) || r.landmarks_std.size() != r.landmarks.size() ||
        r.landmarks_mu.size() != r.landmarks.size()) {
        throw ModelError("a result with " + std::to_string(r.landmarks.size()) + " landmarks, not " +
                         std::to_string(kLandmarks) + ": not a chexmask-rt engine's");
    }
}

Box lung_box(const Result& r) {
    check_landmarks(r);
    Box b{r.landmarks[0].x, r.landmarks[0].y, r.landmarks[0].x, r.landmarks[0].y};
    for (int i = 1; i < kLungLandmarks; ++i) {
        b.min_x = std::min(b.min_x, r.landmarks[i].x);
        b.max_x = std::max(b.max_x, r.landmarks[i].x);
        b.min_y = std::min(b.min_y, r.landmarks[i].y);
        b.max_y = std::max(b.max_y, r.landmarks[i].y);
    }
    return b;
}

double lung_fill(const Result& r) {
    const Box b = lung_box(r);
    return std::max(b.width() / r.width, b.height() / r.height);
}

std::vector<double> average(const std::vector<double>& a, const std::vector<double>& b) {
    std::vector<double> out(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) out[i] = (a[i] + b[i]) / 2;
    return out;
}

std::vector<Point> moved(const std::vector<Point>& points, const Square& s) {
    std::vector<Point> out(points);
    for (Point& p : out) {
        p.x += s.left;
        p.y += s.top;
    }
    return out;
}

// The std (ddof 0) of two equally many samples together, from each one's mean and std.
double pooled_std(double mean_a, double std_a, double mean_b, double std_b) {
    const double half_gap = (mean_a - mean_b) / 2;
    return std::sqrt((std_a * std_a + std_b * std_b) / 2 + half_gap * half_gap);
}

}  // namespace

std::optional<Square> second_look_square(const Result& first) {
    check_landmarks(first);
    for (int i = 0; i < kLungLandmarks; ++i) {
        if (!std::isfinite(first.landmarks[i].x) || !std::isfinite(first.landmarks[i].y)) return std::nullopt;
    }
    const Box b = lung_box(first);
    const double longest = std::max(first.height, first.width);
    const double span = std::max(b.width(), b.height());
    if (span / kSecondLookFill > 2 * longest) return std::nullopt;
    Square s;
    s.side = static_cast<int>(std::ceil(span / kSecondLookFill));
    s.left = static_cast<int>(std::floor((b.min_x + b.max_x) / 2 - s.side / 2.0));
    s.top = static_cast<int>(std::floor((b.min_y + b.max_y) / 2 - s.side / 2.0));
    if (s.side < kMinSide || s.side > std::min(2 * longest, static_cast<double>(kMaxSide))) return std::nullopt;
    return s;
}

Result without_second_look(const Result& first) {
    Result r = first;
    r.second_look = SecondLook{"none", lung_fill(first), 0, 0, 0};
    return r;
}

Result combine(const Result& first, const Result& crop, const Square& square) {
    check_landmarks(crop);
    if (crop.latent_mu.size() != first.latent_mu.size() || crop.latent_sigma.size() != first.latent_sigma.size()) {
        throw ModelError("the two looks' results have different latent widths");
    }
    Result r = first;
    SecondLook info;
    info.first_fill = lung_fill(first);
    info.look = info.first_fill < kCropOnlyBelow ? "crop_only" : "pooled";
    info.crop_left = square.left;
    info.crop_top = square.top;
    info.crop_side = square.side;
    const std::vector<Point> landmarks = moved(crop.landmarks, square), mu = moved(crop.landmarks_mu, square);
    const std::vector<Point> samples = moved(crop.landmark_samples, square);
    if (info.look == "crop_only") {
        r.landmark_samples = samples;
        r.landmarks = landmarks;
        r.landmarks_std = crop.landmarks_std;
        r.landmarks_mu = mu;
        r.latent_mu = crop.latent_mu;
        r.latent_sigma = crop.latent_sigma;
    } else {
        for (std::size_t i = 0; i < r.landmarks.size(); ++i) {
            const Point a = first.landmarks[i], sa = first.landmarks_std[i], b = landmarks[i], sb = crop.landmarks_std[i];
            r.landmarks[i] = {(a.x + b.x) / 2, (a.y + b.y) / 2};
            r.landmarks_std[i] = {pooled_std(a.x, sa.x, b.x, sb.x), pooled_std(a.y, sa.y, b.y, sb.y)};
            r.landmarks_mu[i] = {(first.landmarks_mu[i].x + mu[i].x) / 2, (first.landmarks_mu[i].y + mu[i].y) / 2};
        }
        r.latent_mu = average(first.latent_mu, crop.latent_mu);
        r.latent_sigma = average(first.latent_sigma, crop.latent_sigma);
        if (first.landmark_samples.empty() || samples.empty()) {
            r.landmark_samples.clear();
        } else {  // both looks' decodes, as the pooled mean and std are theirs
            r.landmark_samples.insert(r.landmark_samples.end(), samples.begin(), samples.end());
        }
    }
    set_scores(r);
    r.second_look = info;
    return r;
}

}  // namespace chexmask_rt::detail
