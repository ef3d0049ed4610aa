// The second look, in the same double arithmetic as tests/reference/second_look.py:
// crop a square around the first answer's lungs, predict on it, combine the two answers field
// by field as result_fields.def says (kind: what the crop offset moves; two_looks: how they pool).
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

/// [begin, end) landmark ranges of the lungs in `organs`; a ModelError when `r` is not their
/// landmark count (a result made any other way is never read past its end) or no lung is named.
std::vector<std::pair<std::size_t, std::size_t>> lung_ranges(const Result& r, const std::vector<Organ>& organs) {
    std::vector<std::pair<std::size_t, std::size_t>> lungs;
    std::size_t start = 0;
    for (const Organ& o : organs) {
        if (is_lung(o)) lungs.emplace_back(start, start + o.count);
        start += static_cast<std::size_t>(o.count);
    }
    for_each_field([&](const FieldInfo& field, auto member, auto) {  // every per-landmark field
        if (field.kind != FieldKind::Position && field.kind != FieldKind::Spread) return;
        if (field.need == FieldNeed::Optional && (r.*member).empty()) return;  // the engine has no such output
        if ((r.*member).size() != start) {
            throw ModelError("a result with " + std::to_string((r.*member).size()) + " landmarks, not the " +
                             std::to_string(start) + " of the engine's organs");
        }
    });
    if (lungs.empty()) {
        throw ModelError("the engine's organs name no right_lung or left_lung, which the second look frames; "
                         "predict with second_look off");
    }
    return lungs;
}

Box lung_box(const Result& r, const std::vector<Organ>& organs) {
    const auto lungs = lung_ranges(r, organs);
    const Point first = r.landmarks[lungs.front().first];
    Box b{first.x, first.y, first.x, first.y};
    for (const auto& [begin, end] : lungs) {
        for (std::size_t i = begin; i < end; ++i) {
            b.min_x = std::min(b.min_x, r.landmarks[i].x);
            b.max_x = std::max(b.max_x, r.landmarks[i].x);
            b.min_y = std::min(b.min_y, r.landmarks[i].y);
            b.max_y = std::max(b.max_y, r.landmarks[i].y);
        }
    }
    return b;
}

double lung_fill(const Result& r, const std::vector<Organ>& organs) {
    const Box b = lung_box(r, organs);
    return std::max(b.width() / r.width, b.height() / r.height);
}

bool lungs_finite(const Result& r, const std::vector<Organ>& organs) {
    for (const auto& [begin, end] : lung_ranges(r, organs))
        for (std::size_t i = begin; i < end; ++i)
            if (!std::isfinite(r.landmarks[i].x) || !std::isfinite(r.landmarks[i].y)) return false;
    return true;
}

// The std (ddof 0) of two equally many samples together, from each one's mean and std.
double pooled_std(double mean_a, double std_a, double mean_b, double std_b) {
    const double half_gap = (mean_a - mean_b) / 2;
    return std::sqrt((std_a * std_a + std_b * std_b) / 2 + half_gap * half_gap);
}

template <typename V>
std::size_t flat_size(const V& v) {
    return v.size() * columns_of(v);
}

/// The crop's result in the original image's pixels: its Position and Samples fields moved by the
/// square's corner (a Spread is a length, a Vector no place).
Result moved_to_image(const Result& crop, const Square& s) {
    Result out = crop;
    for_each_field([&](const FieldInfo& field, auto member, auto) {
        if constexpr (std::is_same_v<std::decay_t<decltype(out.*member)>, std::vector<Point>>) {
            if (field.kind != FieldKind::Position && field.kind != FieldKind::Samples) return;
            for (Point& p : out.*member) {
                p.x += s.left;
                p.y += s.top;
            }
        }
    });
    return out;
}

/// `first`'s fields pooled with `crop`'s (already moved to image pixels) as each field's two_looks says.
void pool(Result& r, const Result& first, const Result& crop) {
    for_each_field([&](const FieldInfo& field, auto member, auto mean_member) {
        const auto& a = first.*member;
        const auto& b = crop.*member;
        auto& out = r.*member;
        if (field.two_looks == TwoLooks::Concat) {  // both looks' rows, as the pooled moments are theirs
            out = a;
            if (a.empty() || b.empty()) out.clear();
            else out.insert(out.end(), b.begin(), b.end());
            return;
        }
        if (a.size() != b.size()) {
            throw ModelError(std::string("the two looks' results have different sizes of ") + field.name);
        }
        out = a;
        const double* x = flat(a);
        const double* y = flat(b);
        double* z = flat(out);
        const std::size_t n = flat_size(a);
        if (field.two_looks == TwoLooks::Mean) {
            for (std::size_t i = 0; i < n; ++i) z[i] = (x[i] + y[i]) / 2;
            return;
        }
        const auto& mean_a = first.*mean_member;  // TwoLooks::PooledStd
        const auto& mean_b = crop.*mean_member;
        if (flat_size(mean_a) != n || flat_size(mean_b) != n) {
            throw ModelError(std::string("a pooled std without its mean: ") + field.name + " and " + field.pooled_with);
        }
        const double* ma = flat(mean_a);
        const double* mb = flat(mean_b);
        for (std::size_t i = 0; i < n; ++i) z[i] = pooled_std(ma[i], x[i], mb[i], y[i]);
    });
}

}  // namespace

std::optional<Square> second_look_square(const Result& first, const std::vector<Organ>& organs) {
    if (!lungs_finite(first, organs)) return std::nullopt;  // (a NaN would slip through min and max)
    const Box b = lung_box(first, organs);
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

Result without_second_look(const Result& first, const std::vector<Organ>& organs) {
    Result r = first;
    r.second_look = SecondLook{"none", lung_fill(first, organs), 0, 0, 0};
    return r;
}

Result combine(const Result& first, const Result& crop, const Square& square, const std::vector<Organ>& organs) {
    lung_ranges(crop, organs);  // the crop's result must be the engine's landmark count too
    SecondLook info;
    info.first_fill = lung_fill(first, organs);
    info.look = info.first_fill < kCropOnlyBelow ? "crop_only" : "pooled";
    info.crop_left = square.left;
    info.crop_top = square.top;
    info.crop_side = square.side;
    const Result moved = moved_to_image(crop, square);
    Result r = first;
    if (info.look == "crop_only") {
        for_each_field([&](const FieldInfo&, auto member, auto) { r.*member = moved.*member; });
    } else {
        pool(r, first, moved);
    }
    set_scores(r);
    r.second_look = info;
    return r;
}

}  // namespace chexmask_rt::detail
