#include "jpeg_stream.hpp"

#include <algorithm>

namespace chexmask_rt::detail::jpeg {

void fail(const std::string& why) { throw StreamError(why); }

void HuffmanTable::build(const std::uint8_t* counts, const std::uint8_t* symbols, int total) {
    std::copy(symbols, symbols + total, values.begin());
    lookup.fill(0);
    std::int32_t code = 0;
    int index = 0;
    for (int length = 1; length <= kMaxCodeLength; ++length) {
        const int n = counts[length - 1];
        offset[length] = index - code;
        for (int i = 0; i < n; ++i, ++code, ++index) {
            if (code >= (1 << length)) fail("a Huffman table with more codes than its lengths allow");
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

std::size_t BitReader::align_to_marker() {
    if (bits_ - padding_ >= 8) fail("entropy-coded data continues past where it should end");
    buffer_ = 0;
    bits_ = padding_ = 0;
    if (!at_marker_) fill();  // a byte boundary with no marker read yet: look for it
    if (bits_ - padding_ > 0) fail("entropy-coded data continues past where it should end");
    buffer_ = 0;
    bits_ = padding_ = 0;
    at_marker_ = false;
    return pos_;
}

void BitReader::fill() {
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

void BitReader::restart(int index) {
    std::size_t at = align_to_marker();  // on a marker's 0xFF, or at the end
    while (at < size_ && data_[at] == 0xFF) ++at;  // the marker's 0xFF and any fill bytes
    if (at >= size_ || data_[at] != 0xD0 + index % 8)
        fail("restart marker " + std::to_string(index % 8) + " missing after restart interval " + std::to_string(index + 1));
    pos_ = at + 1;
}

namespace {

std::uint16_t read_u16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

bool is_frame_marker(int marker) { return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC; }

Frame read_frame(int marker, const std::uint8_t* seg, int body) {
    if (body < 6) fail("a short frame header");
    Frame frame;
    frame.sof = marker - 0xC0;
    frame.precision = seg[0];
    frame.height = read_u16(seg + 1);
    frame.width = read_u16(seg + 3);
    const int count = seg[5];
    if (frame.height == 0) fail("a frame of 0 rows (a height given later, DNL, is not read)");
    if (frame.width == 0) fail("a frame of 0 columns");
    if (count < 1 || body != 6 + 3 * count) fail("a frame header of the wrong length for " + std::to_string(count) + " components");
    for (int i = 0; i < count; ++i) {
        const std::uint8_t* c = seg + 6 + 3 * i;
        Component component{c[0], c[1] >> 4, c[1] & 0x0F};
        if (component.h < 1 || component.h > 4 || component.v < 1 || component.v > 4)
            fail("a component sampled " + std::to_string(component.h) + "x" + std::to_string(component.v) + " (1 to 4)");
        for (const Component& other : frame.components)
            if (other.id == component.id) fail("two components with one id");
        frame.components.push_back(component);
    }
    return frame;
}

void read_tables(const std::uint8_t* seg, int body, Tables& tables) {
    int at = 0;
    while (at < body) {
        if (body - at < 17) fail("a short Huffman table");
        const int klass = seg[at] >> 4, id = seg[at] & 0x0F;
        if (klass > 1 || id > 3) fail("a Huffman table of class " + std::to_string(klass) + " and id " + std::to_string(id));
        int total = 0;
        for (int i = 1; i <= kMaxCodeLength; ++i) total += seg[at + i];
        if (total > 256) fail("a Huffman table of " + std::to_string(total) + " codes (at most 256)");
        if (body - at - 17 < total) fail("a Huffman table longer than its segment");
        (klass ? tables.ac : tables.dc)[id].build(seg + at + 1, seg + at + 17, total);
        at += 17 + total;
    }
}

Scan read_scan(const std::uint8_t* seg, int body, const Frame& frame) {
    const int count = body ? seg[0] : 0;
    if (count < 1 || count > 4 || body != 4 + 2 * count) fail("a scan header of the wrong length");
    Scan scan;
    for (int i = 0; i < count; ++i) {
        const int id = seg[1 + 2 * i];
        const auto found = std::find_if(frame.components.begin(), frame.components.end(),
                                        [id](const Component& c) { return c.id == id; });
        if (found == frame.components.end()) fail("a scan of a component the frame does not have");
        for (const ScanComponent& other : scan.components)
            if (other.index == found - frame.components.begin()) fail("a scan that names one component twice");
        const int dc = seg[2 + 2 * i] >> 4, ac = seg[2 + 2 * i] & 0x0F;
        if (dc > 3 || ac > 3) fail("a scan naming Huffman tables " + std::to_string(dc) + " and " + std::to_string(ac) + " (0 to 3)");
        scan.components.push_back({static_cast<int>(found - frame.components.begin()), dc, ac});
    }
    const std::uint8_t* tail = seg + 1 + 2 * count;
    scan.ss = tail[0];
    scan.se = tail[1];
    scan.ah = tail[2] >> 4;
    scan.al = tail[2] & 0x0F;
    return scan;
}

}  // namespace

void walk(const std::uint8_t* data, std::size_t size, const std::function<void(const Frame&)>& on_frame,
          const std::function<std::size_t(const Frame&, const Tables&, int, const Scan&, std::size_t)>& on_scan) {
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) fail("no start-of-image marker");
    Tables tables;
    Frame frame;
    int restart_interval = 0;
    bool scanned = false;
    std::size_t pos = 2;
    while (true) {
        if (pos >= size || data[pos] != 0xFF) fail(pos >= size ? "no end-of-image marker" : "bytes where a marker should be");
        while (pos < size && data[pos] == 0xFF) ++pos;  // fill bytes
        if (pos >= size) fail("no end-of-image marker");
        const int marker = data[pos++];
        if (marker == 0xD9) {
            if (!scanned) fail("no scan before its end-of-image marker");
            return;  // what follows (a DICOM fragment's padding byte) is no part of the image
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) fail("a marker out of place");
        if (pos + 2 > size) fail("cut inside a segment header");
        const int length = read_u16(data + pos);
        if (length < 2 || pos + length > size) fail("a segment longer than the data");
        const std::uint8_t* seg = data + pos + 2;
        const int body = length - 2;
        pos += length;
        if (is_frame_marker(marker)) {
            if (frame.sof >= 0) fail("two frame headers");
            frame = read_frame(marker, seg, body);
            on_frame(frame);
        } else if (marker == 0xC4) {
            read_tables(seg, body, tables);
        } else if (marker == 0xDD) {
            if (body != 2) fail("a restart interval segment of the wrong length");
            restart_interval = read_u16(seg);
        } else if (marker == 0xDA) {
            if (frame.sof < 0) fail("a scan before the frame header");
            const Scan scan = read_scan(seg, body, frame);
            pos = on_scan(frame, tables, restart_interval, scan, pos);
            scanned = true;
        }
    }
}

}  // namespace chexmask_rt::detail::jpeg
