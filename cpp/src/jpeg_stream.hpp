// The parts of a JPEG stream (ITU-T T.81) that the core's readers of DICOM frames share: the walk
// over its segments, Huffman tables and the entropy-coded bits. Data that no encoder writes throws
// StreamError; the readers (lossless_jpeg.cpp, dct_jpeg_check.cpp) turn it into an InputError.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace chexmask_rt::detail::jpeg {

struct StreamError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
[[noreturn]] void fail(const std::string& why);

constexpr int kMaxCodeLength = 16;
constexpr int kLookupBits = 9;  // codes this short (nearly all of them) are found in one look-up

struct HuffmanTable {
    bool defined = false;
    std::array<std::int32_t, kMaxCodeLength + 2> max_code{};  // largest code of each length, -1: none
    std::array<std::int32_t, kMaxCodeLength + 1> offset{};    // value index minus the first code of each length
    std::array<std::uint8_t, 256> values{};
    std::array<std::uint16_t, 1 << kLookupBits> lookup{};     // (length << 8 | value), 0: longer code

    // Canonical codes from the counts per length (Annex C); counts that need more codes than their
    // lengths hold are refused, as no encoder can have written them.
    void build(const std::uint8_t* counts, const std::uint8_t* symbols, int total);
};

// Entropy-coded bits with 0xFF00 unstuffed. At a marker, or the end of the data, it supplies zero bits
// and counts them: a decode that uses one has read past the end of the scan's data.
class BitReader {
public:
    BitReader(const std::uint8_t* data, std::size_t size, std::size_t pos) : data_(data), size_(size), pos_(pos) {}

    // At least 32 bits ahead: one Huffman code and its extra bits (at most 16 + 15) need no refill.
    void ensure() {
        if (bits_ < 32) fill();
    }
    std::uint32_t peek16() const { return static_cast<std::uint32_t>(buffer_ >> 48); }
    void skip(int n) {
        if (n > bits_ - padding_) fail("the entropy-coded data ends before the image does");
        buffer_ <<= n;
        bits_ -= n;
    }
    std::uint32_t take(int n) {  // 1 <= n <= 15
        const auto v = static_cast<std::uint32_t>(buffer_ >> (64 - n));
        skip(n);
        return v;
    }
    // Drops the bits left in the current byte and returns the position of the marker that must follow
    // (the data's size if none does); entropy-coded bytes still unread there are data the image did
    // not use.
    std::size_t align_to_marker();
    // At the end of restart interval `index` (from 0): past marker RST(`index` mod 8), which must come
    // next, reading the next interval's data.
    void restart(int index);

private:
    void fill();

    const std::uint8_t* data_;
    std::size_t size_, pos_;
    std::uint64_t buffer_ = 0;
    int bits_ = 0, padding_ = 0;
    bool at_marker_ = false;
};

// The next Huffman-coded symbol; call ensure() first. Inline: it runs once per sample or coefficient.
inline int decode_symbol(BitReader& bits, const HuffmanTable& table) {
    const std::uint32_t look = bits.peek16();
    const std::uint16_t hit = table.lookup[look >> (16 - kLookupBits)];
    if (hit) {
        bits.skip(hit >> 8);
        return hit & 0xFF;
    }
    // no code of up to kLookupBits bits matched, so by Annex F.2.2.3 the longer ones are compared
    for (int length = kLookupBits + 1; length <= kMaxCodeLength; ++length) {
        const auto code = static_cast<std::int32_t>(look >> (16 - length));
        if (code <= table.max_code[length]) {
            bits.skip(length);
            return table.values[table.offset[length] + code];
        }
    }
    fail("a Huffman code its table does not hold");
}

struct Component {
    int id = 0, h = 1, v = 1;
};
struct Frame {
    int sof = -1;  // the frame marker's low nibble: 0 baseline, 1 extended, 3 lossless, ...
    int precision = 0, width = 0, height = 0;
    std::vector<Component> components;
};
struct ScanComponent {
    int index = 0, dc = 0, ac = 0;  // index into Frame::components; table ids
};
struct Scan {
    std::vector<ScanComponent> components;
    int ss = 0, se = 0, ah = 0, al = 0;
};
struct Tables {
    std::array<HuffmanTable, 4> dc, ac;
};

// Walks the stream from its start-of-image marker to its end-of-image marker: `on_frame` sees the
// frame header (and may refuse it), `on_scan` reads each scan's entropy-coded data from the given
// position and returns the position of the marker after it. Segments the readers do not need
// (APPn, COM, DQT, DNL) are skipped.
void walk(const std::uint8_t* data, std::size_t size, const std::function<void(const Frame&)>& on_frame,
          const std::function<std::size_t(const Frame&, const Tables&, int restart_interval, const Scan&,
                                          std::size_t pos)>& on_scan);

}  // namespace chexmask_rt::detail::jpeg
