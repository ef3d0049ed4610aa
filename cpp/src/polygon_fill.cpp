// Organ masks: a landmark polygon filled byte for byte as cv::fillPoly(mask, {points}, 255) fills it
// with an 8-connected outline and no sub-pixel shift, which is what CheXmask's masks (and this
// package's RLE before the core owned it) were made with. The core links no OpenCV, so its
// published algorithm is rewritten here and checked against cv2 over many thousands of polygons
// (tests/test_polygon_mask.py, the seeded fuzz):
//   1. every edge is drawn as an 8-connected Bresenham line, left to right, clipped to the image;
//   2. the polygon's inside is filled scanline by scanline with the even-odd rule, edges active on
//      the half-open rows [top, bottom), x kept in 16-bit fixed point, each span running from the
//      left crossing rounded up to the right crossing rounded down.
// Edges that leave the image are re-aimed at their clipped ends (step 2 then follows the pixels
// that step 1 drew), which is why the clipping must also be cv::clipLine's, rounding included.
#include "internal.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace chexmask_rt {
namespace {

using i64 = std::int64_t;

constexpr int kFixedBits = 16;                 // sub-pixel bits of an edge's x while it is scanned
constexpr i64 kFixedOne = i64{1} << kFixedBits;

struct Pixel {
    i64 x = 0;
    i64 y = 0;
};

/// One side of the image grid a point lies beyond, as bits (Cohen-Sutherland outcodes).
int outside_bits(const Pixel& p, i64 right, i64 bottom) {
    return (p.x < 0 ? 1 : 0) | (p.x > right ? 2 : 0) | (p.y < 0 ? 4 : 0) | (p.y > bottom ? 8 : 0);
}

/// Moves `a` along the line a-b onto the row or column `bits` asks for. The quotient is formed in
/// double and truncated, as OpenCV does, so clipped ends land on the same pixels.
void move_onto_rows(Pixel& a, const Pixel& b, int bits, i64 bottom) {
    const i64 row = bits < 8 ? 0 : bottom;
    a.x += static_cast<i64>(static_cast<double>(row - a.y) * static_cast<double>(b.x - a.x) /
                            static_cast<double>(b.y - a.y));
    a.y = row;
}

void move_onto_columns(Pixel& a, const Pixel& b, int bits, i64 right) {
    const i64 column = bits == 1 ? 0 : right;
    a.y += static_cast<i64>(static_cast<double>(column - a.x) * static_cast<double>(b.y - a.y) /
                            static_cast<double>(b.x - a.x));
    a.x = column;
}

/// Clips the segment a-b to a width x height grid; false when nothing of it is left. The ends are
/// moved even when it fails (the fill reads them then too, like OpenCV's).
bool clip_segment(Pixel& a, Pixel& b, i64 width, i64 height) {
    const i64 right = width - 1;
    const i64 bottom = height - 1;
    int ca = outside_bits(a, right, bottom);
    int cb = outside_bits(b, right, bottom);
    if ((ca & cb) != 0 || (ca | cb) == 0) return (ca | cb) == 0;
    // First onto the top or bottom row, then (if still outside) onto the left or right column;
    // each end's move uses the other end as it stands at that moment.
    if (ca & 12) {
        move_onto_rows(a, b, ca, bottom);
        ca = outside_bits(a, right, bottom) & 3;
    }
    if (cb & 12) {
        move_onto_rows(b, a, cb, bottom);
        cb = outside_bits(b, right, bottom) & 3;
    }
    if ((ca & cb) == 0 && (ca | cb) != 0) {
        if (ca) {
            move_onto_columns(a, b, ca, right);
            ca = 0;
        }
        if (cb) {
            move_onto_columns(b, a, cb, right);
            cb = 0;
        }
    }
    return (ca | cb) == 0;
}

/// A row-major 0/255 mask being painted.
struct Canvas {
    std::uint8_t* pixels;
    int height;
    int width;

    bool holds(const Pixel& p) const { return p.x >= 0 && p.x < width && p.y >= 0 && p.y < height; }
    void span(int y, int x0, int x1) { std::memset(pixels + static_cast<std::size_t>(y) * width + x0, 255, x1 - x0 + 1); }
};

/// The 8-connected line a-b (both ends drawn), walked from its left end; only its part in the image.
void draw_line(Canvas& canvas, Pixel a, Pixel b) {
    if (!(canvas.holds(a) && canvas.holds(b)) && !clip_segment(a, b, canvas.width, canvas.height)) return;
    if (b.x < a.x) std::swap(a, b);
    const i64 run = b.x - a.x;
    const i64 rise = b.y >= a.y ? b.y - a.y : a.y - b.y;
    const i64 step_y = b.y >= a.y ? 1 : -1;
    // The longer axis advances every pixel; the shorter when the error term has gone negative.
    const bool steep = rise > run;
    const i64 major = steep ? rise : run;
    const i64 minor = steep ? run : rise;
    i64 error = major - 2 * minor;
    i64 x = a.x;
    i64 y = a.y;
    for (i64 i = 0; i <= major; ++i) {
        canvas.pixels[static_cast<std::size_t>(y) * canvas.width + static_cast<std::size_t>(x)] = 255;
        const bool side_step = error < 0;
        error -= 2 * minor;
        if (side_step) error += 2 * major;
        if (steep) {
            y += step_y;
            if (side_step) ++x;
        } else {
            ++x;
            if (side_step) y += step_y;
        }
    }
}

/// A non-horizontal polygon side, active on the rows [top, bottom); x in fixed point at the current row.
struct Edge {
    int top = 0;
    int bottom = 0;
    i64 x = 0;
    i64 dx = 0;  ///< x step per row, fixed point, truncated toward zero
};

/// Draws the side from `from` to `to` and returns the edge the fill scans (none when it is horizontal).
std::optional<Edge> draw_side(Canvas& canvas, const Pixel& from, const Pixel& to) {
    draw_line(canvas, from, to);
    // A side that leaves the image is scanned along the line through its clipped ends (what was
    // drawn), extended to its own rows.
    Pixel a = from;
    Pixel b = to;
    i64 a_row = from.y;
    i64 b_row = to.y;
    if (!canvas.holds(from) || !canvas.holds(to)) {
        clip_segment(a, b, canvas.width, canvas.height);
        if (a.y != b.y) {
            a_row = a.y;
            b_row = b.y;
        }
    }
    if (from.y == to.y) return std::nullopt;
    Edge edge;
    edge.dx = (b.x - a.x) * kFixedOne / (b_row - a_row);
    if (from.y < to.y) {
        edge.top = static_cast<int>(from.y);
        edge.bottom = static_cast<int>(to.y);
        edge.x = a.x * kFixedOne + (from.y - a_row) * edge.dx;
    } else {
        edge.top = static_cast<int>(to.y);
        edge.bottom = static_cast<int>(from.y);
        edge.x = b.x * kFixedOne + (to.y - b_row) * edge.dx;
    }
    return edge;
}

/// Fills the inside of `edges` row by row, even-odd between the x-sorted active edges.
void fill_edges(Canvas& canvas, std::vector<Edge>& edges) {
    if (edges.size() < 2) return;
    int first_row = edges.front().top;
    int last_row = edges.front().bottom;
    i64 x_min = edges.front().x;
    i64 x_max = edges.front().x;
    for (const Edge& e : edges) {
        const i64 x_end = e.x + static_cast<i64>(e.bottom - e.top) * e.dx;
        first_row = std::min(first_row, e.top);
        last_row = std::max(last_row, e.bottom);
        x_min = std::min({x_min, e.x, x_end});
        x_max = std::max({x_max, e.x, x_end});
    }
    if (last_row < 0 || first_row >= canvas.height || x_max < 0 || x_min >= i64{canvas.width} * kFixedOne) return;

    std::sort(edges.begin(), edges.end(), [](const Edge& p, const Edge& q) {
        if (p.top != q.top) return p.top < q.top;
        if (p.x != q.x) return p.x < q.x;
        return p.dx < q.dx;
    });
    const auto by_x = [](const Edge* p, const Edge* q) { return p->x < q->x; };
    std::vector<Edge*> active;
    std::size_t next = 0;
    last_row = std::min(last_row, canvas.height);
    for (int y = first_row; y < last_row; ++y) {
        active.erase(std::remove_if(active.begin(), active.end(), [y](const Edge* e) { return e->bottom == y; }),
                     active.end());
        for (; next < edges.size() && edges[next].top == y; ++next) {
            Edge* e = &edges[next];
            active.insert(std::lower_bound(active.begin(), active.end(), e, by_x), e);
        }
        // Pairs of crossings bound the inside; a lone last crossing (never on a closed polygon) is left.
        for (std::size_t i = 0; i + 1 < active.size(); i += 2) {
            Edge* left = active[i];
            Edge* right = active[i + 1];
            if (y >= 0) {
                const i64 x0 = (left->x + kFixedOne - 1) >> kFixedBits;
                const i64 x1 = right->x >> kFixedBits;
                if (x0 < canvas.width && x1 >= 0) {
                    canvas.span(y, static_cast<int>(std::max<i64>(x0, 0)),
                                static_cast<int>(std::min<i64>(x1, canvas.width - 1)));
                }
            }
            left->x += left->dx;
            right->x += right->dx;
        }
        // Crossings move by at most a few places per row: insertion sort, stable.
        for (std::size_t i = 1; i < active.size(); ++i) {
            Edge* e = active[i];
            std::size_t j = i;
            for (; j > 0 && active[j - 1]->x > e->x; --j) active[j] = active[j - 1];
            active[j] = e;
        }
    }
}

}  // namespace

namespace detail {

std::size_t polygon_mask_bytes(std::int64_t height, std::int64_t width) {
    if (height < 1 || width < 1 || height > kMaxSide || width > kMaxSide) {
        throw InputError("polygon_mask: size " + std::to_string(width) + "x" + std::to_string(height) +
                         " is outside 1.." + std::to_string(kMaxSide));
    }
    return static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
}

void fill_polygon(const Point* polygon, std::size_t count, int height, int width, std::uint8_t* out, bool zeroed) {
    polygon_mask_bytes(height, width);
    if (count == 0) throw InputError("polygon_mask: the polygon has no points");
    // Vertices are clamped (a wildly wrong landmark must not overflow the fixed point), then
    // truncated toward zero as NumPy's astype(int32) does.
    const double limit = 4.0 * std::max(height, width);
    std::vector<Pixel> vertices;
    vertices.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        const Point& p = polygon[i];
        if (!std::isfinite(p.x) || !std::isfinite(p.y)) {
            throw InputError("polygon_mask: point " + std::to_string(i) + " is not finite");
        }
        vertices.push_back({static_cast<i64>(std::clamp(p.x, -limit, limit)),
                            static_cast<i64>(std::clamp(p.y, -limit, limit))});
    }
    // cleared only once every point passed, so that a refused polygon leaves the caller's buffer as it was
    if (!zeroed) std::memset(out, 0, static_cast<std::size_t>(height) * static_cast<std::size_t>(width));
    Canvas canvas{out, height, width};
    std::vector<Edge> edges;
    edges.reserve(vertices.size());
    Pixel previous = vertices.back();
    for (const Pixel& vertex : vertices) {
        if (auto edge = draw_side(canvas, previous, vertex)) edges.push_back(*edge);
        previous = vertex;
    }
    fill_edges(canvas, edges);
}

}  // namespace detail

std::vector<std::uint8_t> polygon_mask(const std::vector<Point>& polygon, int height, int width) {
    std::vector<std::uint8_t> mask(detail::polygon_mask_bytes(height, width));  // zeroed
    detail::fill_polygon(polygon.data(), polygon.size(), height, width, mask.data(), true);
    return mask;
}

}  // namespace chexmask_rt
