// A check of a sequential Huffman DCT JPEG frame (T.81 processes 1 and 2, SOF0/SOF1) that no
// decoder here reads strictly: DICOM's 12-bit JPEG Extended (1.2.840.10008.1.2.4.51), the lossy CR
// archive form. libjpeg-turbo decodes it (through imagecodecs, or pydicom's plugins), but fills damaged
// data in with a warning nobody sees; this walks the entropy-coded data without transforming it and
// refuses what libjpeg-turbo would warn of: a code its table lacks, data ending before the last block
// or going on past it, a restart marker out of turn, and a coefficient no encoder writes.
#include <algorithm>
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

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// One 8x8 block's coefficients (F.2.2.1, F.2.2.2), read and dropped.
void skip_block(BitReader& bits, const HuffmanTable& dc, const HuffmanTable& ac, int max_dc, int max_ac) {
    bits.ensure();
    const int category = jpeg::decode_symbol(bits, dc);
    if (category > max_dc) fail("a DC difference of category " + std::to_string(category) + " (at most " + std::to_string(max_dc) + ")");
    if (category) bits.skip(category);
    for (int k = 1; k < 64;) {
        bits.ensure();
        const int symbol = jpeg::decode_symbol(bits, ac);
        const int run = symbol >> 4, size = symbol & 0x0F;
        if (size == 0) {
            if (run != 15) break;  // end of block
            k += 16;               // sixteen zeros
            if (k > 64) fail("a run of zeros past the block's 64 coefficients");
            continue;
        }
        k += run;
        if (k > 63) fail("a coefficient past the block's 64");
        if (size > max_ac) fail("an AC coefficient of size " + std::to_string(size) + " (at most " + std::to_string(max_ac) + ")");
        bits.skip(size);
        ++k;
    }
}

}  // namespace

int check_dct_jpeg(const std::uint8_t* data, std::size_t size) {
    std::vector<bool> scanned;
    int precision = 0;
    const auto on_frame = [&](const jpeg::Frame& frame) {
        if (frame.sof != 0 && frame.sof != 1)
            throw InputError("JPEG frame of type SOF" + std::to_string(frame.sof) +
                             ": only sequential Huffman frames (SOF0, SOF1) are checked here");
        if (frame.precision != 8 && frame.precision != 12)  // GDCM writes 16-bit ones, which T.81 has not
            throw InputError("JPEG DCT frame of " + std::to_string(frame.precision) +
                             "-bit samples: the standard's DCT processes have 8 or 12, and no decoder here reads others");
        scanned.assign(frame.components.size(), false);
        precision = frame.precision;
    };
    const auto on_scan = [&](const jpeg::Frame& frame, const jpeg::Tables& tables, int restart_interval,
                             const jpeg::Scan& scan, std::size_t pos) {
        // Ss, Se, Ah and Al mean nothing in a sequential scan: libjpeg-turbo warns of values other than
        // 0, 63, 0, 0 and reads all 64 coefficients, as this does (an NM scanner's 12-bit files say Se 0)
        int h_max = 1, v_max = 1;
        for (const jpeg::Component& c : frame.components) {
            h_max = std::max(h_max, c.h);
            v_max = std::max(v_max, c.v);
        }
        for (const jpeg::ScanComponent& c : scan.components) {
            if (scanned[c.index]) fail("a second scan of one component");
            scanned[c.index] = true;
            if (!tables.dc[c.dc].defined || !tables.ac[c.ac].defined) fail("a scan whose Huffman table is not defined");
        }
        // A1.1, A.2: one component alone is scanned block by block; several, in MCUs of each one's blocks
        long long mcus = 0;
        if (scan.components.size() == 1) {
            const jpeg::Component& c = frame.components[scan.components[0].index];
            mcus = static_cast<long long>(ceil_div(ceil_div(frame.width * c.h, h_max), 8)) *
                   ceil_div(ceil_div(frame.height * c.v, v_max), 8);
        } else {
            mcus = static_cast<long long>(ceil_div(frame.width, 8 * h_max)) * ceil_div(frame.height, 8 * v_max);
        }
        const int max_dc = frame.precision == 8 ? 11 : 15, max_ac = frame.precision == 8 ? 10 : 14;
        BitReader bits(data, size, pos);
        for (long long mcu = 0; mcu < mcus; ++mcu) {
            if (restart_interval && mcu && mcu % restart_interval == 0) bits.restart(static_cast<int>(mcu / restart_interval - 1));
            for (const jpeg::ScanComponent& sc : scan.components) {
                const jpeg::Component& c = frame.components[sc.index];
                const int blocks = scan.components.size() == 1 ? 1 : c.h * c.v;
                for (int b = 0; b < blocks; ++b) skip_block(bits, tables.dc[sc.dc], tables.ac[sc.ac], max_dc, max_ac);
            }
        }
        return bits.align_to_marker();
    };
    try {
        jpeg::walk(data, size, on_frame, on_scan);
    } catch (const jpeg::StreamError& e) {
        throw InputError(std::string("damaged JPEG: ") + e.what());
    }
    for (std::size_t i = 0; i < scanned.size(); ++i)
        if (!scanned[i]) throw InputError("damaged JPEG: component " + std::to_string(i + 1) + " has no scan");
    return precision;
}

}  // namespace chexmask_rt::detail
