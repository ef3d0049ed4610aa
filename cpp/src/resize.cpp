// The core's own bilinear resize of a square window onto an image, black where the window
// leaves the image. The window is never materialised: each output row reads at most two
// window rows, each resampled from the image row it covers (or zero). Letterboxing is the
// window of side max(h, w) around the image, the second look's crop another window, so a
// 65536 x 32 image costs two rows of output, not a 65536^2 square.
//
// The arithmetic is cv::resize(INTER_LINEAR) of the zero-padded square, so results equal
// what CheXmask's pipeline (and tests/reference/resize.py) computes:
// - tap positions and weights in float from ((i + 0.5) * L / S - 0.5); a column tap left
//   of 0 or at the last column clamps to that column with weight 0, a row tap outside
//   clamps to the first or last row with its weight kept;
// - 8-bit: weights in 11-bit fixed point, rows summed in int, columns combined as OpenCV's
//   vector path does for output widths that are multiples of 16 (every engine side is a
//   multiple of 32), which is bit-exact against cv2;
// - 16-bit and float: float32 products and sums, 16-bit rounded half to even. This build
//   compiles with -ffp-contract=off so that no fused multiply-add changes a rounding.
// OpenCV itself is not used: the packaging work drops it from the core.
#include "internal.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace chexmask_rt::detail {
namespace {

constexpr float kFixedOne = 2048.0f;  // OpenCV's INTER_RESIZE_COEF_SCALE for 8-bit images

/// One axis: output i reads window positions pos[i] and pos[i] + 1 with weights w0[i] and w1[i].
struct AxisTaps {
    std::vector<std::int64_t> pos;
    std::vector<float> w0, w1;
};

AxisTaps axis_taps(int window, int size, bool clamp_weights) {
    const double scale = 1.0 / (static_cast<double>(size) / window);
    AxisTaps t;
    t.pos.resize(size);
    t.w0.resize(size);
    t.w1.resize(size);
    for (int i = 0; i < size; ++i) {
        float f = static_cast<float>((i + 0.5) * scale - 0.5);
        std::int64_t p = static_cast<std::int64_t>(std::floor(f));
        f -= static_cast<float>(p);
        if (clamp_weights && p < 0) f = 0.0f, p = 0;
        if (clamp_weights && p >= window - 1) f = 0.0f, p = window - 1;
        t.pos[i] = p;
        t.w0[i] = 1.0f - f;
        t.w1[i] = f;
    }
    return t;
}

std::int32_t fixed(float w) { return static_cast<std::int32_t>(std::lrint(w * kFixedOne)); }

/// Per pixel type: what a row sum holds, its weights, and how two row sums become one output value.
template <typename T>
struct Arithmetic;

template <>
struct Arithmetic<std::uint8_t> {
    using Sum = std::int32_t;
    static Sum weight(float w) { return fixed(w); }
    static float combine(Sum s0, Sum s1, Sum b0, Sum b1) {
        const std::int32_t t = ((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16);
        return static_cast<float>(std::clamp((t + 2) >> 2, 0, 255));
    }
};

template <>
struct Arithmetic<std::uint16_t> {
    using Sum = float;
    static Sum weight(float w) { return w; }
    static float combine(Sum s0, Sum s1, Sum b0, Sum b1) {
        const float v = s0 * b0 + s1 * b1;
        return std::clamp(std::nearbyint(v), 0.0f, 65535.0f);
    }
};

template <>
struct Arithmetic<float> {
    using Sum = float;
    static Sum weight(float w) { return w; }
    static float combine(Sum s0, Sum s1, Sum b0, Sum b1) { return s0 * b0 + s1 * b1; }
};

/// `T`: the stored pixel type; `Depth`: the arithmetic's (uint16 content <= 255 runs the uint8 one).
template <typename T, typename Depth = T>
void resize_window_typed(const ImageView& image, const Square& window, int size, float scale, float* out) {
    using A = Arithmetic<Depth>;
    using Sum = typename A::Sum;
    // Columns: image column of each tap; a tap outside the image reads column 0 with weight 0,
    // which adds exactly the 0 a black pixel would.
    const AxisTaps cols = axis_taps(window.side, size, true);
    std::vector<std::int64_t> col0(size), col1(size);
    std::vector<Sum> a0(size), a1(size);
    for (int i = 0; i < size; ++i) {
        const std::int64_t x0 = window.left + cols.pos[i], x1 = x0 + 1;
        const bool in0 = x0 >= 0 && x0 < image.width, in1 = x1 >= 0 && x1 < image.width;
        col0[i] = in0 ? x0 : 0;
        col1[i] = in1 ? x1 : 0;
        a0[i] = in0 ? A::weight(cols.w0[i]) : Sum(0);
        a1[i] = in1 ? A::weight(cols.w1[i]) : Sum(0);
    }
    const AxisTaps rows = axis_taps(window.side, size, false);

    // The two window rows the current output row reads, resampled along x.
    std::vector<Sum> sums[2] = {std::vector<Sum>(size), std::vector<Sum>(size)};
    std::int64_t held[2] = {-1, -1};
    auto slot = [&](std::int64_t r) { return held[0] == r ? 0 : held[1] == r ? 1 : -1; };
    auto fill = [&](int k, std::int64_t r) {
        held[k] = r;
        const std::int64_t y = window.top + r;
        if (y < 0 || y >= image.height) {
            std::fill(sums[k].begin(), sums[k].end(), Sum(0));
            return;
        }
        const T* src = reinterpret_cast<const T*>(static_cast<const unsigned char*>(image.data) +
                                                  static_cast<std::size_t>(y) * image.stride);
        for (int i = 0; i < size; ++i) sums[k][i] = Sum(src[col0[i]]) * a0[i] + Sum(src[col1[i]]) * a1[i];
    };

    const std::int64_t last = window.side - 1;
    for (int dy = 0; dy < size; ++dy) {
        const std::int64_t r0 = std::clamp<std::int64_t>(rows.pos[dy], 0, last);
        const std::int64_t r1 = std::clamp<std::int64_t>(rows.pos[dy] + 1, 0, last);
        int k0 = slot(r0);
        if (k0 < 0) {
            k0 = slot(r1) == 0 ? 1 : 0;  // keep r1 if it is already there
            fill(k0, r0);
        }
        int k1 = slot(r1);
        if (k1 < 0) {
            k1 = 1 - k0;
            fill(k1, r1);
        }
        const std::vector<Sum>& s0 = sums[k0];
        const std::vector<Sum>& s1 = sums[k1];
        const Sum b0 = A::weight(rows.w0[dy]), b1 = A::weight(rows.w1[dy]);
        float* dst = out + static_cast<std::size_t>(dy) * size;
        for (int dx = 0; dx < size; ++dx) dst[dx] = A::combine(s0[dx], s1[dx], b0, b1) / scale;
    }
}

}  // namespace

void resize_window(const Pixels& image, const Square& window, int size, float scale, float* out) {
    const ImageView& v = image.view;
    if (image.depth == 32) return resize_window_typed<float>(v, window, size, scale, out);
    if (v.bit_depth == 8) return resize_window_typed<std::uint8_t>(v, window, size, scale, out);
    if (image.depth == 8) return resize_window_typed<std::uint16_t, std::uint8_t>(v, window, size, scale, out);
    resize_window_typed<std::uint16_t>(v, window, size, scale, out);
}

}  // namespace chexmask_rt::detail
