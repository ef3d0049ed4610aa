// One-component lossless JPEG (ITU-T T.81 process 14, SOF3): the frames of DICOM's JPEG Lossless
// transfer syntaxes (1.2.840.10008.1.2.4.57 and .70), the usual storage of CR and DX archives.
//
// Written here because the decoders Python offers fill damaged data in and say nothing (libjpeg-turbo
// through imagecodecs, libjpeg through pylibjpeg: a frame cut at two thirds decodes with a third of
// its pixels invented), or end the process on it (GDCM). This one reads strictly: a Huffman code that
// is no code, data that ends before the last sample or goes on past it, a restart marker out of turn,
// or a sample outside the frame's precision is an InputError.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "internal.hpp"

namespace chexmask_rt::detail {
namespace {

constexpr int kMaxCodeLength = 16;
constexpr int kLookupBits = 9;  // codes this short (nearly all of them) are found in one look-up

[[noreturn]] void corrupt(const std::string& why) { throw InputError("lossless JPEG: " + why); }

struct HuffmanTable {
    bool defined = false;
    std::array<std::int32_t, kMaxCodeLength + 2> max_code{};  // largest code of each length, -1: none
    std::array<std::int32_t, kMaxCodeLength + 1> offset{};    // value index minus the first code of each length
    std::array<std::uint8_t, 256> values{};
    std::array<std::uint16_t, 1 << kLookupBits> lookup{};     // (length << 8 | value), 0: longer code

    // Canonical codes from the counts per length (T.81 Annex C); a set of counts that needs more
    // codes than its lengths hold is refused, as no encoder can have written it.
    void build(const std::uint8_t* counts, const std::uint8_t* symbols, int total) {
        std::copy(symbols, symbols + total, values.begin());
        lookup.fill(0);
        std::int32_t code = 0;
        int index = 0;
        for (int length = 1; length <= kMaxCodeLength; ++length) {
            const int n = counts[length - 1];
            offset[length] = index - code;
            for (int i = 0; i < n; ++i, ++code, ++index) {
                if (code >= (1 << length)) corrupt("a Huffman table with more codes than its lengths allow");
                if (length <= kLookupBits) {
                    const int shift = kLookupBits - length;
                    for (int fill = 0; fill < (1 << shift); ++fill)
                        lookup[(code << shift) | fill] = static_cast<std::uint16_t>(length << 8 | values[index]);
                }
            }
            max_code[length] = n ? code - 1 : -1;
            code <<= 1;
        }
        max_code[kMaxCodeLength + 1] = 0x7FFFFFFF;
        defined = true;
    }
};

// Entropy-coded bits with 0xFF00 unstuffed. At a marker, or the end of the data, it supplies zero bits
// and counts them: a decode that uses one read past the end of the scan's data.
class BitReader {
public:
    BitReader(const std::uint8_t* data, std::size_t size, std::size_t pos) : data_(data), size_(size), pos_(pos) {}

    // At least 32 bits ahead: one sample's code and extra bits (at most 16 + 15) need no refill.
    void ensure() {
        if (bits_ < 32) fill();
    }
    std::uint32_t peek16() const { return static_cast<std::uint32_t>(buffer_ >> 48); }
    void skip(int n) {
        if (n > bits_ - padding_) corrupt("the data ends before the last sample");
        buffer_ <<= n;
        bits_ -= n;
    }
    std::uint32_t take(int n) {
        const auto v = static_cast<std::uint32_t>(buffer_ >> (64 - n));  // 1 <= n <= 15
        skip(n);
        return v;
    }
    // Drops the bits left in the current byte and returns the position of the marker that must
    // follow; entropy-coded bytes still unread there are data the samples did not use.
    std::size_t align_to_marker() {
        if (bits_ - padding_ >= 8) corrupt("entropy-coded data continues past the samples it should hold");
        buffer_ = 0;
        bits_ = padding_ = 0;
        if (!at_marker_) fill();  // a byte boundary with no marker read yet: look for it
        if (bits_ - padding_ > 0) corrupt("entropy-coded data continues past the samples it should hold");
        buffer_ = 0;
        bits_ = padding_ = 0;
        at_marker_ = false;
        return pos_;
    }

private:
    void fill() {
        while (bits_ <= 56) {
            std::uint64_t byte = 0;
            if (!at_marker_ && pos_ < size_) {
                byte = data_[pos_];
                if (byte == 0xFF) {
                    if (pos_ + 1 < size_ && data_[pos_ + 1] == 0x00) {
                        pos_ += 2;
                    } else {
                        at_marker_ = true;  // pos_ stays on the marker's 0xFF
                        continue;
                    }
                } else {
                    ++pos_;
                }
            } else {
                at_marker_ = true;
                padding_ += 8;
            }
            buffer_ |= byte << (56 - bits_);
            bits_ += 8;
        }
    }

    const std::uint8_t* data_;
    std::size_t size_, pos_;
    std::uint64_t buffer_ = 0;
    int bits_ = 0, padding_ = 0;
    bool at_marker_ = false;
};

int decode_category(BitReader& bits, const HuffmanTable& table) {
    const std::uint32_t look = bits.peek16();
    const std::uint16_t hit = table.lookup[look >> (16 - kLookupBits)];
    if (hit) {
        bits.skip(hit >> 8);
        return hit & 0xFF;
    }
    for (int length = kLookupBits + 1; length <= kMaxCodeLength; ++length) {
        const auto code = static_cast<std::int32_t>(look >> (16 - length));
        if (code <= table.max_code[length]) {
            bits.skip(length);
            return table.values[table.offset[length] + code];
        }
    }
    corrupt("a Huffman code its table does not hold");
}

// One difference (T.81 H.1.2.2): a Huffman-coded category, then that many bits of its value.
inline std::int32_t read_difference(BitReader& reader, const HuffmanTable& table) {
    reader.ensure();
    const int category = decode_category(reader, table);
    if (category == 0) return 0;
    if (category < 16) {
        const auto v = static_cast<std::int32_t>(reader.take(category));
        return v < (1 << (category - 1)) ? v - (1 << category) + 1 : v;
    }
    if (category == 16) return 32768;  // no extra bits
    corrupt("a difference category of " + std::to_string(category) + " (0 to 16)");
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

struct Scan {
    int width, height, bits, point_transform, rows_per_interval;
};

// The samples of a scan into `out` (width x height), reconstructed by H.1.2.1: the first row of each
// restart interval from its left neighbour (the first sample from 2^(bits - 1)), the first column
// from above, the rest by the predictor. Returns the position of the marker after the scan's data.
template <int Predictor>
std::size_t decode_scan(const std::uint8_t* data, std::size_t size, std::size_t pos, const HuffmanTable& table,
                        const Scan& scan, std::uint16_t* out) {
    const std::uint32_t top = (1u << scan.bits) - 1;
    std::vector<std::int32_t> row(scan.width), above(scan.width);
    BitReader reader(data, size, pos);
    for (int y = 0; y < scan.height; ++y) {
        const bool first_row = y % scan.rows_per_interval == 0;
        if (first_row && y) {
            std::size_t at = reader.align_to_marker();
            while (at < size && data[at] == 0xFF) ++at;  // the marker's 0xFF and any fill bytes
            const int expected = 0xD0 + (y / scan.rows_per_interval - 1) % 8;
            if (at >= size || data[at] != expected || data[at - 1] != 0xFF)
                corrupt("restart marker " + std::to_string(expected - 0xD0) + " missing at row " + std::to_string(y));
            reader = BitReader(data, size, at + 1);
        }
        for (int x = 0; x < scan.width; ++x) {
            const std::int32_t predicted = first_row ? (x ? row[x - 1] : 1 << (scan.bits - 1))
                                           : x ? predict<Predictor>(row[x - 1], above[x], above[x - 1])
                                               : above[0];
            const auto value = static_cast<std::uint32_t>(predicted + read_difference(reader, table)) & 0xFFFF;
            if (value > top)
                corrupt("a sample of " + std::to_string(value) + " at (" + std::to_string(x) + ", " + std::to_string(y) +
                        "), past its " + std::to_string(scan.bits) + "-bit precision");
            row[x] = static_cast<std::int32_t>(value);
            *out++ = static_cast<std::uint16_t>(value << scan.point_transform);
        }
        row.swap(above);
    }
    return reader.align_to_marker();
}

struct Frame {
    int precision = 0, width = 0, height = 0, component = -1;
};

std::uint16_t read_u16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

LosslessImage decode_lossless_jpeg(const std::uint8_t* data, std::size_t size, std::int64_t max_pixels) {
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) corrupt("no start-of-image marker");
    std::array<HuffmanTable, 4> tables;
    Frame frame;
    int restart_interval = 0;
    LosslessImage image;
    bool scanned = false;
    std::size_t pos = 2;
    while (true) {
        if (pos >= size || data[pos] != 0xFF) corrupt(pos >= size ? "no end-of-image marker" : "bytes where a marker should be");
        while (pos < size && data[pos] == 0xFF) ++pos;  // fill bytes
        if (pos >= size) corrupt("no end-of-image marker");
        const int marker = data[pos++];
        if (marker == 0xD9) {
            if (!scanned) corrupt("no scan before its end-of-image marker");
            return image;
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) corrupt("a marker out of place");
        if (pos + 2 > size) corrupt("cut inside a segment header");
        const int length = read_u16(data + pos);
        if (length < 2 || pos + length > size) corrupt("a segment longer than the data");
        const std::uint8_t* seg = data + pos + 2;
        const int body = length - 2;
        pos += length;
        if (marker == 0xC3) {
            if (frame.precision) corrupt("two frame headers");
            if (body < 6) corrupt("a short frame header");
            frame.precision = seg[0];
            frame.height = read_u16(seg + 1);
            frame.width = read_u16(seg + 3);
            const int components = seg[5];
            if (frame.precision < 2 || frame.precision > 16) corrupt("sample precision " + std::to_string(frame.precision) + " (2 to 16)");
            if (frame.height == 0) corrupt("a frame of 0 rows (a height given later, DNL, is not read)");
            if (frame.width == 0) corrupt("a frame of 0 columns");
            if (components != 1)
                throw InputError("lossless JPEG of " + std::to_string(components) +
                                 " components: only one-component (grayscale) frames are read");
            if (body < 9) corrupt("a short frame header");
            frame.component = seg[6];
            if (static_cast<std::int64_t>(frame.width) * frame.height > max_pixels)
                throw InputError("lossless JPEG of " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                                 " pixels, over the limit of " + std::to_string(max_pixels));
        } else if ((marker >= 0xC0 && marker <= 0xCF) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
            throw InputError("JPEG frame of type SOF" + std::to_string(marker - 0xC0) +
                             ": only lossless Huffman frames (SOF3) are read here");
        } else if (marker == 0xC4) {
            int at = 0;
            while (at < body) {
                if (body - at < 17) corrupt("a short Huffman table");
                const int klass = seg[at] >> 4, id = seg[at] & 0x0F;
                if (klass != 0 || id > 3) corrupt("a Huffman table of class " + std::to_string(klass) + " and id " + std::to_string(id));
                int total = 0;
                for (int i = 1; i <= kMaxCodeLength; ++i) total += seg[at + i];
                if (total > 256 || body - at - 17 < total) corrupt("a Huffman table longer than its segment");
                tables[id].build(seg + at + 1, seg + at + 17, total);
                at += 17 + total;
            }
        } else if (marker == 0xDD) {
            if (body != 2) corrupt("a restart interval segment of the wrong length");
            restart_interval = read_u16(seg);
        } else if (marker == 0xDA) {
            if (!frame.precision) corrupt("a scan before the frame header");
            if (scanned) corrupt("a second scan of its one component");
            if (body != 6 || seg[0] != 1) corrupt("a scan header that is not one component's");
            if (seg[1] != frame.component) corrupt("a scan of a component the frame does not have");
            const int table_id = seg[2] >> 4;
            const int predictor = seg[3], point_transform = seg[5] & 0x0F;
            if (table_id > 3 || !tables[table_id].defined) corrupt("a scan whose Huffman table is not defined");
            if (predictor < 1 || predictor > 7) corrupt("predictor " + std::to_string(predictor) + " (1 to 7)");
            if (seg[4] != 0 || (seg[5] >> 4) != 0 || point_transform >= frame.precision)
                corrupt("a scan header with values only lossy or successive scans have");
            if (restart_interval % frame.width)
                throw InputError("lossless JPEG with a restart interval of " + std::to_string(restart_interval) +
                                 " samples, not whole rows of " + std::to_string(frame.width));
            const Scan scan{frame.width, frame.height, frame.precision - point_transform, point_transform,
                            restart_interval ? restart_interval / frame.width : frame.height};
            image.width = frame.width;
            image.height = frame.height;
            image.precision = frame.precision;
            image.samples.assign(static_cast<std::size_t>(frame.width) * frame.height, 0);
            using Decode = std::size_t (*)(const std::uint8_t*, std::size_t, std::size_t, const HuffmanTable&, const Scan&,
                                           std::uint16_t*);
            static constexpr Decode decode[] = {decode_scan<1>, decode_scan<2>, decode_scan<3>, decode_scan<4>,
                                                decode_scan<5>, decode_scan<6>, decode_scan<7>};
            pos = decode[predictor - 1](data, size, pos, tables[table_id], scan, image.samples.data());
            scanned = true;
        } else if (marker == 0xCC) {
            throw InputError("arithmetic-coded JPEG: only Huffman-coded lossless frames are read here");
        }
        // APPn, COM, DQT and other segments carry nothing a lossless frame needs
    }
}

}  // namespace chexmask_rt::detail
