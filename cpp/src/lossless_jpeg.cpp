// One-component lossless JPEG (ITU-T T.81 process 14, SOF3): the frames of DICOM's JPEG Lossless
// transfer syntaxes (1.2.840.10008.1.2.4.57 and .70), the usual storage of CR and DX archives.
//
// Written here because the decoders Python offers fill damaged data in and say nothing (libjpeg-turbo
// through imagecodecs, libjpeg through pylibjpeg: a frame cut at two thirds decodes with a third of
// its pixels invented), or end the process on it (GDCM). This one reads strictly: a Huffman code that
// is no code, data that ends before the last sample or goes on past it, a restart marker out of turn,
// or a sample outside the frame's precision is an InputError.
#include <cstdint>
#include <string>
#include <vector>

#include "internal.hpp"
#include "jpeg_stream.hpp"

namespace chexmask_rt::detail {
namespace {

using jpeg::BitReader;
using jpeg::fail;
using jpeg::HuffmanTable;

// One difference (T.81 H.1.2.2): a Huffman-coded category, then that many bits of its value.
inline std::int32_t read_difference(BitReader& reader, const HuffmanTable& table) {
    reader.ensure();
    const int category = jpeg::decode_symbol(reader, table);
    if (category == 0) return 0;
    if (category < 16) {
        const auto v = static_cast<std::int32_t>(reader.take(category));
        return v < (1 << (category - 1)) ? v - (1 << category) + 1 : v;
    }
    if (category == 16) return 32768;  // no extra bits
    fail("a difference category of " + std::to_string(category) + " (0 to 16)");
}

template <int Predictor>
inline std::int32_t predict(std::int32_t a, std::int32_t b, std::int32_t c) {
    if constexpr (Predictor == 1) return a;
    if constexpr (Predictor == 2) return b;
    if constexpr (Predictor == 3) return c;
    if constexpr (Predictor == 4) return a + b - c;
    if constexpr (Predictor == 5) return a + ((b - c) >> 1);
    if constexpr (Predictor == 6) return b + ((a - c) >> 1);
    if constexpr (Predictor == 7) return (a + b) >> 1;
}

struct Samples {
    int width, height, bits, point_transform, rows_per_interval;
};

// The samples of a scan into `out` (width x height), reconstructed by H.1.2.1: the first row of each
// restart interval from its left neighbour (the first sample from 2^(bits - 1)), the first column
// from above, the rest by the predictor. Returns the position of the marker after the scan's data.
template <int Predictor>
std::size_t decode_scan(const std::uint8_t* data, std::size_t size, std::size_t pos, const HuffmanTable& table,
                        const Samples& scan, std::uint16_t* out) {
    const std::uint32_t top = (1u << scan.bits) - 1;
    std::vector<std::int32_t> row(scan.width), above(scan.width);
    BitReader reader(data, size, pos);
    for (int y = 0; y < scan.height; ++y) {
        const bool first_row = y % scan.rows_per_interval == 0;
        if (first_row && y) reader.restart(y / scan.rows_per_interval - 1);  // the interval that just ended
        for (int x = 0; x < scan.width; ++x) {
            const std::int32_t predicted = first_row ? (x ? row[x - 1] : 1 << (scan.bits - 1))
                                           : x ? predict<Predictor>(row[x - 1], above[x], above[x - 1])
                                               : above[0];
            const auto value = static_cast<std::uint32_t>(predicted + read_difference(reader, table)) & 0xFFFF;
            if (value > top)
                fail("a sample of " + std::to_string(value) + " at (" + std::to_string(x) + ", " + std::to_string(y) +
                     "), past its " + std::to_string(scan.bits) + "-bit precision");
            row[x] = static_cast<std::int32_t>(value);
            *out++ = static_cast<std::uint16_t>(value << scan.point_transform);
        }
        row.swap(above);
    }
    return reader.align_to_marker();
}

}  // namespace

LosslessImage decode_lossless_jpeg(const std::uint8_t* data, std::size_t size, std::int64_t max_pixels) {
    LosslessImage image;
    const auto on_frame = [&](const jpeg::Frame& frame) {
        if (frame.sof != 3)
            throw InputError("JPEG frame of type SOF" + std::to_string(frame.sof) +
                             ": only lossless Huffman frames (SOF3) are read here");
        if (frame.precision < 2 || frame.precision > 16)
            fail("sample precision " + std::to_string(frame.precision) + " (2 to 16)");
        if (frame.components.size() != 1)
            throw InputError("lossless JPEG of " + std::to_string(frame.components.size()) +
                             " components: only one-component (grayscale) frames are read");
        if (static_cast<std::int64_t>(frame.width) * frame.height > max_pixels)
            throw InputError("lossless JPEG of " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                             " pixels, over the limit of " + std::to_string(max_pixels));
    };
    const auto on_scan = [&](const jpeg::Frame& frame, const jpeg::Tables& tables, int restart_interval,
                             const jpeg::Scan& scan, std::size_t pos) {
        if (!image.samples.empty()) fail("a second scan of its one component");
        if (scan.components.size() != 1) fail("a scan header that is not one component's");
        const int table = scan.components[0].dc, predictor = scan.ss, point_transform = scan.al;
        if (!tables.dc[table].defined) fail("a scan whose Huffman table is not defined");
        if (predictor < 1 || predictor > 7) fail("predictor " + std::to_string(predictor) + " (1 to 7)");
        if (scan.se != 0 || scan.ah != 0 || point_transform >= frame.precision)
            fail("a scan header with values only lossy or successive scans have");
        if (restart_interval % frame.width)
            throw InputError("lossless JPEG with a restart interval of " + std::to_string(restart_interval) +
                             " samples, not whole rows of " + std::to_string(frame.width));
        const Samples samples{frame.width, frame.height, frame.precision - point_transform, point_transform,
                              restart_interval ? restart_interval / frame.width : frame.height};
        image.width = frame.width;
        image.height = frame.height;
        image.precision = frame.precision;
        image.samples.assign(static_cast<std::size_t>(frame.width) * frame.height, 0);
        using Decode = std::size_t (*)(const std::uint8_t*, std::size_t, std::size_t, const HuffmanTable&,
                                       const Samples&, std::uint16_t*);
        static constexpr Decode decode[] = {decode_scan<1>, decode_scan<2>, decode_scan<3>, decode_scan<4>,
                                            decode_scan<5>, decode_scan<6>, decode_scan<7>};
        return decode[predictor - 1](data, size, pos, tables.dc[table], samples, image.samples.data());
    };
    try {
        jpeg::walk(data, size, on_frame, on_scan);
    } catch (const jpeg::StreamError& e) {
        throw InputError(std::string("lossless JPEG: ") + e.what());
    }
    return image;
}

}  // namespace chexmask_rt::detail
