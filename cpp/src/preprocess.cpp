// Image -> engine input, numerically identical to tests/reference/preprocess.py: the centred
// zero pad to a square, resized INTER_LINEAR in the input's own depth (resize.cpp, without ever
// materialising the square), then float32 division by the full scale.
#include "internal.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace chexmask_rt::detail {

std::size_t bytes_per_pixel(int bit_depth) {
    if (bit_depth == 8) return 1;
    if (bit_depth == 0 || (bit_depth >= 9 && bit_depth <= 16)) return 2;
    if (bit_depth == 32) return 4;
    throw InputError("image: unsupported bit_depth " + std::to_string(bit_depth) +
                     "; use 8 (uint8), 9..16 (uint16), 0 (uint16, inferred) or 32 (float32 in [0, 1])");
}

namespace {

std::string size_text(const ImageView& image) {
    return std::to_string(image.width) + "x" + std::to_string(image.height);
}

void check_geometry(const ImageView& image) {
    if (image.width > kMaxSide || image.height > kMaxSide) {
        throw InputError("image: image is " + size_text(image) + " pixels; at most " + std::to_string(kMaxSide) +
                         " on a side is supported");
    }
    if (image.width < kMinSide || image.height < kMinSide) {
        throw InputError("image: image is " + size_text(image) + " pixels; at least " + std::to_string(kMinSide) +
                         "x" + std::to_string(kMinSide) + " is needed");
    }
}

void check_buffer(const ImageView& image, std::size_t bpp) {
    if (image.data == nullptr) throw InputError("image: pixel data pointer is null");
    const std::size_t row_bytes = static_cast<std::size_t>(image.width) * bpp;
    if (image.stride < row_bytes) {
        // bit_depth 0 is uint16 (depth inferred): the likeliest cause is an 8-bit buffer left at 0
        throw InputError("image: stride " + std::to_string(image.stride) + " bytes is smaller than a row (" +
                         std::to_string(image.width) + " pixels x " + std::to_string(bpp) + " bytes" +
                         (image.bit_depth == 0 ? "; bit_depth 0 reads uint16 pixels: 8-bit ones need bit_depth 8"
                                               : "") + ")");
    }
    if (image.stride % bpp != 0 || reinterpret_cast<std::uintptr_t>(image.data) % bpp != 0) {
        throw InputError("image: data pointer and stride must be multiples of the pixel size (" +
                         std::to_string(bpp) + " bytes)");
    }
    const std::size_t rows_before_last = static_cast<std::size_t>(image.height) - 1;
    if (rows_before_last != 0 && image.stride > (std::numeric_limits<std::size_t>::max() - row_bytes) / rows_before_last) {
        throw InputError("image: stride " + std::to_string(image.stride) + " is implausibly large");
    }
    const std::size_t needed = rows_before_last * image.stride + row_bytes;
    if (image.size_bytes != 0 && image.size_bytes < needed) {
        throw InputError("image: buffer holds " + std::to_string(image.size_bytes) + " bytes; a " + size_text(image) +
                         " image with stride " + std::to_string(image.stride) + " needs " + std::to_string(needed));
    }
}

// Float images must already be in [0, 1], as Python's to_gray demands.
void check_float_values(const ImageView& image) {
    for (int y = 0; y < image.height; ++y) {
        const auto* row = reinterpret_cast<const float*>(static_cast<const unsigned char*>(image.data) +
                                                         static_cast<std::size_t>(y) * image.stride);
        for (int x = 0; x < image.width; ++x) {
            const float v = row[x];
            if (!std::isfinite(v)) throw InputError("image: image contains NaN or infinite values");
            if (v < 0.0f || v > 1.0f) throw InputError("image: float images must lie in [0, 1]");
        }
    }
}

}  // namespace

void validate_image(const ImageView& image) {
    const std::size_t bpp = bytes_per_pixel(image.bit_depth);
    check_geometry(image);
    check_buffer(image, bpp);
}

int significant_bits(const ImageView& image16) {
    std::uint16_t top = 0;
    for (int y = 0; y < image16.height; ++y) {
        const auto* row = reinterpret_cast<const std::uint16_t*>(static_cast<const unsigned char*>(image16.data) +
                                                                 static_cast<std::size_t>(y) * image16.stride);
        for (int x = 0; x < image16.width; ++x) top = std::max(top, row[x]);
    }
    int bits = 0;
    while (bits < 16 && (top >> bits) != 0) ++bits;
    return std::max(8, bits);
}

Pixels resolve_pixels(const ImageView& image) {
    validate_image(image);
    Pixels p{image, image.bit_depth};
    if (image.bit_depth == 32) {
        check_float_values(image);
        return p;
    }
    if (image.bit_depth == 8) return p;
    p.view.bit_depth = 16;  // uint16 storage; `depth` says how its values scale
    const int bits = significant_bits(image);
    if (image.bit_depth == 0) {
        p.depth = bits;  // 8: content <= 255 takes the uint8 arithmetic, bit-identical to a uint8 image
    } else if (bits > image.bit_depth) {
        throw InputError("image: pixel values need " + std::to_string(bits) + " bits, more than bit_depth " +
                         std::to_string(image.bit_depth) + " (at most " + std::to_string((1u << image.bit_depth) - 1u) +
                         "); pass the image's real bit depth, or none to infer it (C and C++: 0; Python: None; "
                         "the command line: no --bit-depth)");
    }
    return p;
}

float full_scale(const Pixels& image) {
    return image.depth == 32 ? 1.0f : static_cast<float>((1u << image.depth) - 1u);
}

Letterbox letterbox_into(const Pixels& image, int size, float scale, float* out) {
    const Letterbox frame{image.view.height, image.view.width};
    resize_window(image, Square{-frame.pad_left(), -frame.pad_top(), frame.side()}, size, scale, out);
    return frame;
}

Letterbox preprocess_into(const Pixels& image, int size, float* out) {
    return letterbox_into(image, size, full_scale(image), out);
}

Letterbox preprocess_square(const Pixels& image, const Square& square, int size, float* out) {
    if (square.side < 1 || square.side > kMaxSide) {
        throw InputError("image: crop side " + std::to_string(square.side) + " is outside 1.." + std::to_string(kMaxSide));
    }
    resize_window(image, square, size, full_scale(image), out);
    return Letterbox{square.side, square.side};
}

}  // namespace chexmask_rt::detail
