// C++ tests of the native core, meant to run under AddressSanitizer/valgrind too.
//   chexmask-rt-tests MODEL.onnx LIBONNXRUNTIME [NOT_AN_ENGINE_FILE [WRONG_ENGINE...]]
// A WRONG_ENGINE (tests/toy_engine.py writes them) must be refused with a ModelError when it
// loads or when it runs, never read past; one whose name contains "other_anatomy" (another
// landmark count, with organs metadata that says so) must run on its own organs.
// Python parity is tested in tests/test_native*.py; this covers memory safety of
// the bad-input paths and thread safety without Python in the process.
#include <chexmask_rt/chexmask_rt.hpp>
#include <chexmask_rt/chexmask_rt_c.h>

#include "internal.hpp"
#include "json.hpp"
#include "quality.hpp"
#include "sha256.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>  // getpid: a cgroup tree of this run's own

namespace {

int g_failures = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            std::cerr << __FILE__ << ":" << __LINE__ << ": FAILED " #cond "\n";  \
            ++g_failures;                                                        \
        }                                                                        \
    } while (0)

template <typename E>
void expect_throw(const std::function<void()>& f, const char* what, const char* needle) {
    try {
        f();
        std::cerr << "FAILED: no exception for " << what << "\n";
        ++g_failures;
    } catch (const E& e) {
        if (std::strstr(e.what(), needle) == nullptr) {
            std::cerr << "FAILED: " << what << ": message '" << e.what() << "' lacks '" << needle << "'\n";
            ++g_failures;
        }
    } catch (const std::exception& e) {
        std::cerr << "FAILED: " << what << ": wrong exception type: " << e.what() << "\n";
        ++g_failures;
    }
}

std::vector<std::uint8_t> gradient(int w, int h, std::size_t stride) {
    std::vector<std::uint8_t> px(stride * h, 0);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) px[y * stride + x] = static_cast<std::uint8_t>((x * 7 + y * 3) % 256);
    return px;
}

chexmask_rt::ImageView view(const std::vector<std::uint8_t>& px, int w, int h, std::size_t stride, int bits = 8) {
    chexmask_rt::ImageView v;
    v.data = px.data();
    v.width = w;
    v.height = h;
    v.stride = stride;
    v.bit_depth = bits;
    v.size_bytes = px.size();
    return v;
}

bool same(const chexmask_rt::Result& a, const chexmask_rt::Result& b) {
    auto eq = [](const std::vector<chexmask_rt::Point>& p, const std::vector<chexmask_rt::Point>& q) {
        return p.size() == q.size() && std::memcmp(p.data(), q.data(), p.size() * sizeof(p[0])) == 0;
    };
    return eq(a.landmarks, b.landmarks) && eq(a.landmarks_std, b.landmarks_std) && eq(a.landmarks_mu, b.landmarks_mu) &&
           a.latent_sigma == b.latent_sigma && a.mean_node_std == b.mean_node_std;
}

// The CPU quota read from a cgroup tree made here: v2 (cpu.max, the default of current Docker and
// Kubernetes, which no other test reaches: the test machines run v1) and v1, a parent's smaller quota
// winning, "max" and a missing file meaning none.
void test_cgroup_quota() {
    namespace fs = std::filesystem;
    const fs::path root = fs::temp_directory_path() / ("chexmask-rt-cgroups-" + std::to_string(::getpid()));
    auto write = [&](const std::string& file, const std::string& text) {
        fs::create_directories((root / file).parent_path());
        std::ofstream(root / file) << text << "\n";
    };
    auto quota = [&](const std::string& self_text) {
        std::istringstream self(self_text);
        return chexmask_rt::detail::cgroup_quota_cpus(self, root.string());
    };
    write("kubepods/pod1/ctr/cpu.max", "150000 100000");  // 1.5 CPUs: 2, rounded up
    write("kubepods/pod1/cpu.max", "max 100000");
    CHECK(quota("0::/kubepods/pod1/ctr\n") == 2);
    write("kubepods/cpu.max", "100000 100000");  // the pod's parent allows one CPU
    CHECK(quota("0::/kubepods/pod1/ctr\n") == 1);
    CHECK(quota("0::/elsewhere\n") == 0);  // no cpu.max anywhere on its way up
    write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000");
    write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000");
    CHECK(quota("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n") == 3);
    write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1");  // v1's "no quota"
    CHECK(quota("4:cpu,cpuacct:/docker/abc\n") == 0);
    std::error_code ec;
    fs::remove_all(root, ec);
}

void test_noise() {
    const auto a = chexmask_rt::latent_noise(5, 64, 42);
    const auto b = chexmask_rt::latent_noise(3, 64, 42);
    CHECK(a.size() == 5 * 64);
    CHECK(std::equal(b.begin(), b.end(), a.begin()));  // counter based: a prefix
    const auto odd = chexmask_rt::latent_noise(1, 3, 7);
    CHECK(odd.size() == 3 && std::isfinite(odd[2]));
    expect_throw<chexmask_rt::InputError>([] { chexmask_rt::latent_noise(0, 64, 0); }, "zero samples", "samples");
}

void test_bad_images() {
    using chexmask_rt::InputError;
    std::vector<float> out(256 * 256);
    const auto px = gradient(64, 64, 64);
    auto pre = [&](chexmask_rt::ImageView v) {
        chexmask_rt::detail::preprocess_into(chexmask_rt::detail::resolve_pixels(v), 256, out.data());
    };
    auto v = view(px, 64, 64, 64);
    expect_throw<InputError>([&] { auto b = v; b.data = nullptr; pre(b); }, "null", "null");
    expect_throw<InputError>([&] { auto b = v; b.width = 0; pre(b); }, "zero width", "image is 0x64 pixels; at least 32x32 is needed");
    expect_throw<InputError>([&] { auto b = v; b.height = 70000; pre(b); }, "huge", "image is 64x70000 pixels; at most 65536 on a side");
    expect_throw<InputError>([&] { auto b = v; b.width = 16; b.stride = 16; pre(b); }, "tiny", "at least 32x32");
    expect_throw<InputError>([&] { auto b = v; b.stride = 63; pre(b); }, "stride", "stride");
    expect_throw<InputError>([&] { auto b = v; b.size_bytes = 64 * 63; pre(b); }, "short buffer", "buffer holds");
    expect_throw<InputError>([&] { auto b = v; b.bit_depth = 12; pre(b); }, "12-bit rows wider than the stride", "smaller than a row");
    expect_throw<InputError>([&] { auto b = v; b.bit_depth = 7; pre(b); }, "bit depth", "bit_depth");
    expect_throw<InputError>([&] { auto b = v; b.bit_depth = 24; pre(b); }, "bit depth", "bit_depth");
    expect_throw<InputError>([&] { auto b = v; b.stride = SIZE_MAX / 2; b.size_bytes = 0; pre(b); }, "stride overflow",
                             "implausibly");
    expect_throw<InputError>([&] { auto b = v; b.data = px.data() + 1; b.bit_depth = 16; b.width = 31 + 1; b.size_bytes = 0; pre(b); },
                             "misaligned 16-bit", "multiples");
    std::vector<float> nan_image(64 * 64, 0.5f);
    nan_image[100] = NAN;
    chexmask_rt::ImageView f{nan_image.data(), 64, 64, 64 * sizeof(float), 32, nan_image.size() * sizeof(float)};
    expect_throw<InputError>([&] { pre(f); }, "NaN float", "NaN");
    // A valid image with padding bytes between rows.
    const auto padded = gradient(40, 50, 48);
    pre(view(padded, 40, 50, 48));
    CHECK(out[0] == 0.0f);
    // a buffer one byte short is refused (a C caller's last row read past it); the last row needs no stride padding
    expect_throw<InputError>([&] { auto b = v; b.size_bytes = 64 * 64 - 1; pre(b); }, "one byte short", "needs 4096");
    { auto b = view(padded, 40, 50, 48); b.size_bytes = 49 * 48 + 40; pre(b); }
    expect_throw<InputError>([&] { auto b = view(padded, 40, 50, 48); b.size_bytes = 49 * 48 + 39; pre(b); }, "padded short", "needs 2392");
    // a negative float is refused as a value above 1 is (Python checks before the core; C and C++ callers did not)
    std::vector<float> negative(64 * 64, 0.5f);
    negative[7] = -0.25f;
    chexmask_rt::ImageView neg{negative.data(), 64, 64, 64 * sizeof(float), 32, negative.size() * sizeof(float)};
    expect_throw<InputError>([&] { pre(neg); }, "negative float", "[0, 1]");
}

/// bit_depth 0 infers a uint16 image's depth as Python's significant_bits does: content <= 255 is
/// the uint8 path bit for bit; an explicit depth too small for the pixels is refused.
void test_bit_depth_inference() {
    using namespace chexmask_rt::detail;
    const int w = 70, h = 50;
    std::vector<std::uint8_t> px8(w * h);
    std::vector<std::uint16_t> px16(w * h), px12(w * h);
    for (int i = 0; i < w * h; ++i) {
        px8[i] = static_cast<std::uint8_t>((i * 37) % 256);
        px16[i] = px8[i];
        px12[i] = static_cast<std::uint16_t>((i * 37) % 4096);
    }
    auto input = [&](const void* data, int bits, std::size_t bpp) {
        std::vector<float> out(64 * 64);
        const chexmask_rt::ImageView v{data, w, h, w * bpp, bits, w * h * bpp};
        preprocess_into(resolve_pixels(v), 64, out.data());
        return out;
    };
    CHECK(input(px16.data(), 0, 2) == input(px8.data(), 8, 1));  // not merely close: the same floats
    CHECK(input(px16.data(), 0, 2) != input(px16.data(), 9, 2));  // an explicit 9 is not the 8-bit path
    CHECK(input(px12.data(), 0, 2) == input(px12.data(), 12, 2));
    CHECK(input(px12.data(), 16, 2) != input(px12.data(), 12, 2));
    const chexmask_rt::ImageView v12{px12.data(), w, h, w * 2, 0, px12.size() * 2};
    CHECK(significant_bits(v12) == 12 && resolve_pixels(v12).depth == 12);
    std::vector<std::uint16_t> dark(w * h, 3);
    CHECK(significant_bits(chexmask_rt::ImageView{dark.data(), w, h, w * 2, 0, dark.size() * 2}) == 8);
    expect_throw<chexmask_rt::InputError>([&] { input(px12.data(), 11, 2); }, "12-bit pixels as 11", "bit_depth 11");
}

chexmask_rt::Result ring_result(double cx, double cy, double rx, double ry, int height, int width) {
    chexmask_rt::Result r;
    for (int i = 0; i < 120; ++i) {
        const double t = 2 * M_PI * i / 120;
        r.landmarks.push_back({cx + rx * std::cos(t), cy + ry * std::sin(t)});
        r.landmarks_std.push_back({1.0, 2.0});
    }
    r.landmarks_mu = r.landmarks;
    r.latent_mu.assign(4, 0.0);
    r.latent_sigma.assign(4, 1.0);
    r.height = height;
    r.width = width;
    return r;
}

void test_second_look() {
    using namespace chexmask_rt::detail;
    // the square: centred on the lungs (the first 94 landmarks), which span kSecondLookFill of it
    const auto& organs = default_organs();
    const auto sq = second_look_square(ring_result(500, 400, 160, 120, 1000, 1000), organs);
    CHECK(sq && sq->side == 400 && sq->left == 300 && sq->top == 200);
    CHECK(!second_look_square(ring_result(50, 50, 10, 10, 100, 100), organs));       // 25 px: no image
    CHECK(!second_look_square(ring_result(50, 50, 400, 400, 100, 100), organs));     // over twice the image
    auto nan_result = ring_result(500, 400, 160, 120, 1000, 1000);
    nan_result.landmarks[3].x = NAN;
    CHECK(!second_look_square(nan_result, organs));

    // the crop: read in place, black where it leaves the image, in the image's own depth; the same
    // engine input as the crop copied out and letterboxed (a square: no padding)
    std::vector<std::uint16_t> px(40 * 40);
    for (int i = 0; i < 1600; ++i) px[i] = static_cast<std::uint16_t>(i + 1);
    const Pixels v = resolve_pixels(chexmask_rt::ImageView{px.data(), 40, 40, 40 * 2, 12, px.size() * 2});
    const Square sq_at{-8, 28, 33};
    std::vector<std::uint16_t> copied(33 * 33, 0);
    for (int y = 0; y < 33; ++y)
        for (int x = 0; x < 33; ++x) {
            const int iy = y + sq_at.top, ix = x + sq_at.left;
            if (iy >= 0 && iy < 40 && ix >= 0 && ix < 40) copied[y * 33 + ix - sq_at.left] = px[iy * 40 + ix];
        }
    const Pixels copied_view = resolve_pixels(chexmask_rt::ImageView{copied.data(), 33, 33, 33 * 2, 12, copied.size() * 2});
    std::vector<float> in_place(64 * 64), from_copy(64 * 64);
    const Letterbox crop_frame = preprocess_square(v, sq_at, 64, in_place.data());
    preprocess_into(copied_view, 64, from_copy.data());
    CHECK(crop_frame.side() == 33 && crop_frame.pad_left() == 0 && crop_frame.pad_top() == 0);
    CHECK(in_place == from_copy);
    CHECK(in_place[0] == 0.0f && in_place[64 * 64 - 1] == 0.0f && in_place[64 * 10 + 40] > 0.0f);
    preprocess_square(v, Square{100, 100, 40}, 64, in_place.data());  // entirely outside
    CHECK(std::all_of(in_place.begin(), in_place.end(), [](float f) { return f == 0.0f; }));

    // pooling: the mean and ddof-0 std of both looks' samples together. Samples {1, 3} and {6, 10}
    // have means 2, 8 and stds 1, 2; all four: mean 5, std sqrt(46 / 4). Landmark 100 is a heart
    // landmark, so it leaves the lungs' fill alone.
    const Square at{100, 100, 625};
    auto second = ring_result(250, 250, 240, 240, 625, 625);
    second.landmarks[100] = {8.0 - 100, 8.0 - 100};
    second.landmarks_std[100] = {2.0, 2.0};
    second.latent_sigma.assign(4, 3.0);
    auto wide = ring_result(500, 400, 300, 300, 1000, 1000);   // lungs fill 0.6: a wide field of view
    const auto alone = combine(wide, second, at, organs);
    CHECK(alone.second_look && alone.second_look->look == "crop_only" && alone.second_look->crop_side == 625);
    CHECK(std::fabs(alone.second_look->first_fill - 0.6) < 1e-9);
    CHECK(alone.landmarks[100].x == 8.0 && alone.latent_sigma[0] == 3.0 && alone.mean_latent_sigma == 3.0);
    auto framed = ring_result(500, 400, 400, 380, 1000, 1000);  // fill 0.8
    framed.landmarks[100] = {2.0, 2.0};
    framed.landmarks_std[100] = {1.0, 1.0};
    const auto pooled = combine(framed, second, at, organs);
    CHECK(pooled.second_look && pooled.second_look->look == "pooled");
    CHECK(std::fabs(pooled.landmarks[100].x - 5.0) < 1e-12);
    CHECK(std::fabs(pooled.landmarks_std[100].y - std::sqrt(11.5)) < 1e-12);
    CHECK(pooled.latent_sigma[0] == 2.0 && std::fabs(pooled.node_uncertainty[100] - std::sqrt(11.5)) < 1e-12);
    const auto none = without_second_look(framed, organs);
    // lungs spanning exactly kCropOnlyBelow (0.7) of the image are pooled, as the reference has it (fill < 0.7: crop only)
    auto at_threshold = ring_result(500, 400, 350, 100, 1000, 1000);  // landmarks 0 and 60: x = 150 and 850 exactly
    const auto tie = combine(at_threshold, second, at, organs);
    CHECK(tie.second_look->first_fill == chexmask_rt::kCropOnlyBelow && tie.second_look->look == "pooled");
    CHECK(none.second_look && none.second_look->look == "none" && none.landmarks[100].x == 2.0);

    // a result that is not the anatomy's 120 landmarks is refused, not read past
    auto short_result = ring_result(500, 400, 160, 120, 1000, 1000);
    short_result.landmarks.resize(10);
    short_result.landmarks_std.resize(10);
    short_result.landmarks_mu.resize(10);
    using chexmask_rt::ModelError;
    expect_throw<ModelError>([&] { second_look_square(short_result, organs); }, "10 landmarks", "10 landmarks");
    expect_throw<ModelError>([&] { without_second_look(short_result, organs); }, "10 landmarks, none", "10 landmarks");
    expect_throw<ModelError>([&] { combine(framed, short_result, at, organs); }, "10-landmark crop", "10 landmarks");
    // ... and with other organs the lungs are theirs: 10 landmarks, lungs 0..5, so landmark 7 is no lung
    const std::vector<chexmask_rt::Organ> small = {{"right_lung", 3}, {"left_lung", 3}, {"heart", 4}};
    short_result.landmarks[7] = {5000.0, 5000.0};
    const auto small_square = second_look_square(short_result, small);
    CHECK(small_square && small_square->side < 1000);
    expect_throw<ModelError>([&] { second_look_square(short_result, {{"heart", 10}}); }, "no lungs", "no right_lung");

    // the combine follows result_fields.def: samples are concatenated and moved, latents averaged
    auto with_samples = framed;
    with_samples.landmark_samples.assign(2 * 120, chexmask_rt::Point{1.0, 1.0});
    auto crop_samples = second;
    crop_samples.landmark_samples.assign(2 * 120, chexmask_rt::Point{1.0, 1.0});
    const auto both = combine(with_samples, crop_samples, at, organs);
    CHECK(both.landmark_samples.size() == 4 * 120 && both.landmark_samples[240].x == 101.0);
    CHECK(combine(with_samples, second, at, organs).landmark_samples.empty());  // only one look has them
}

void test_schema_and_metadata() {
    using chexmask_rt::ModelError;
    const auto& fields = chexmask_rt::result_fields();
    CHECK(fields.size() >= 6 && std::string(fields[0].name) == "landmarks" && std::string(fields[0].output) == "landmarks_mean");
    auto r = ring_result(500, 400, 160, 120, 1000, 1000);
    const chexmask_rt::FieldValues v = chexmask_rt::field_values(r, 1);
    CHECK(v.rows == 120 && v.columns == 2 && v.data[1] == 2.0);
    CHECK(chexmask_rt::field_values(r, 3).columns == 1 && chexmask_rt::field_values(r, 5).rows == 0);
    expect_throw<chexmask_rt::InputError>([&] { chexmask_rt::field_values(r, fields.size()); }, "past the table", "past");

    std::map<std::string, std::string> meta = {{"chexmask_rt.format_version", "1"}, {"chexmask_rt.inputsize", "64"},
                                               {"chexmask_rt.latents", "8"}, {"chexmask_rt.skip", "false"},
                                               {"chexmask_rt.checkpoint_sha256", "0"}};
    const chexmask_rt::ModelInfo plain = chexmask_rt::parse_model_info(meta, "m");
    CHECK(plain.landmarks == 120 && plain.organs.size() == 3 && plain.organs[1].count == 50);
    meta["chexmask_rt.organs"] = "right_lung:20,left_lung:25,heart:15";
    CHECK(chexmask_rt::parse_model_info(meta, "m").landmarks == 60);
    for (const char* bad : {"right_lung:20,,heart:3", "lung", "a:1,a:2", "a:0", "a:1x", ":3", "a:99999999999"}) {
        meta["chexmask_rt.organs"] = bad;
        expect_throw<ModelError>([&] { chexmask_rt::parse_model_info(meta, "m"); }, bad, "chexmask_rt.organs");
    }
}

/// The JSON reader: what it reads, and every kind of defect refused as a ParseError (never a crash).
void test_json() {
    using namespace chexmask_rt::detail::json;
    const Value v = parse(" {\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\u00e9\\ud83d\\ude00\\n\\/\", "
                          "\"a\": {\"b\": 0.957301580812782}} ");
    CHECK(v.type == Value::Type::object && v.keys.size() == 3);
    CHECK(v.find("a") != nullptr && v.find("a")->type == Value::Type::object);  // a repeated key: the last wins
    CHECK(v.find("a")->find("b")->number == 0.957301580812782);
    CHECK(v.items[0].items.size() == 5 && v.items[0].items[1].number == -2500.0 && v.items[0].items[2].boolean);
    CHECK(v.items[0].items[4].type == Value::Type::null);
    CHECK(v.find("s")->string == "x\xc3\xa9\xf0\x9f\x98\x80\n/");
    CHECK(v.find("missing") == nullptr && v.items[0].find("a") == nullptr);
    CHECK(parse("5.308593389307588").number == 5.308593389307588 && parse("1E-2").number == 0.01);
    CHECK(parse("[]").items.empty() && parse("{}").keys.empty() && parse("\"\"").string.empty());
    // every JSON escape decodes to its character (the calibration and metadata reader)
    CHECK(parse("\"\\t\\b\\f\\r\\\"\\\\\"").string == "\t\b\f\r\"\\");

    const std::string deep_ok = std::string(kMaxDepth, '[') + std::string(kMaxDepth, ']');
    CHECK(parse(deep_ok).type == Value::Type::array);
    const std::vector<std::string> bad = {
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a: 1}", "{'a': 1}", "[1 2]", "01", "1.", ".5", "+1",
        "-", "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "1e400", "tru", "nul", "True", "\"abc", "\"a\\\"",
        "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"tab\there\"",
        "\"\xff\"", "\"\xc0\xaf\"", "\xef\xbb\xbf{}", "{} x", "[1] [2]", std::string("[1\0]", 4), std::string("\0", 1),
        std::string(kMaxDepth + 1, '[') + std::string(kMaxDepth + 1, ']'), std::string(100000, '['),
        std::string(100000, '{'), "[" + std::string(5000, '"')};
    for (const std::string& text : bad) {
        try {
            parse(text);
            std::cerr << "FAILED: JSON accepted: " << text.substr(0, 40) << "\n";
            ++g_failures;
        } catch (const ParseError& e) {
            CHECK(std::strstr(e.what(), " at byte ") != nullptr || std::strstr(e.what(), "UTF-8") != nullptr);
        }
    }
    // every prefix of a valid document, and every single-byte change of it, parses or is refused
    const std::string doc = "{\"k\": {\"thresholds\": {\"node_std_1024\": 5.3, \"mean_latent_sigma\": 0.957}}, \"l\": [\"\\u00e9\"]}";
    for (std::size_t cut = 0; cut < doc.size(); ++cut) {
        try {
            parse(doc.substr(0, cut));
            std::cerr << "FAILED: JSON prefix accepted: " << doc.substr(0, cut) << "\n";
            ++g_failures;
        } catch (const ParseError&) {
        }
    }
    for (std::size_t at = 0; at < doc.size(); ++at) {
        for (const int byte : std::initializer_list<int>{0, '"', '\\', '{', '[', ']', '}', ',', ':', '9', 'e', 0x80, 0xff}) {
            std::string changed = doc;
            changed[at] = static_cast<char>(byte);
            try {
                parse(changed);
            } catch (const ParseError&) {
            }
        }
    }
}

/// The reliability flag: thresholds from a calibration file, reasons as Python's f-strings wrote them.
void test_quality() {
    using namespace chexmask_rt::detail;
    using chexmask_rt::ModelError;
    CHECK(node_std_1024(2.0, 512, 256) == 4.0 && node_std_1024(3.0, 1000, 2048) == 1.5);
    const std::string sha(64, 'a');
    const std::string file = "{\"" + sha + "\": {\"model\": \"m:1\", \"thresholds\": {\"node_std_1024\": 5.308593389307588, "
                             "\"mean_latent_sigma\": 0.957301580812782}}, \"other\": {}}";
    const QualityAssessor calibrated = parse_quality(file, "q.json", sha);
    CHECK(calibrated.rule() && calibrated.rule()->max_node_std_1024 == 5.308593389307588);
    // 2.5 px at 2048 = 1.25 px in the 1024 frame
    chexmask_rt::Quality q = calibrated.assess(2.5, 0.95, 2048, 1500);
    CHECK(!q.flag && q.calibrated);
    CHECK(q.reason == "within calibrated thresholds (mean node std 1.25 px (1024 frame) <= 5.31, mean latent sigma 0.9500 <= 0.9573)");
    // one decode (K = 1): its spread of 0 is no measurement, and the reason does not quote it as one
    q = calibrated.assess(0.0, 0.95, 1024, 1024, false);
    CHECK(!q.flag && q.reason == "within calibrated thresholds (mean node std not measured: one sample, mean latent "
                                 "sigma 0.9500 <= 0.9573)");
    CHECK(calibrated.assess(0.0, 0.96, 1024, 1024, false).flag);  // the latent sigma still flags
    chexmask_rt::Result one;
    one.height = one.width = 1024;
    one.samples = 1;
    one.mean_latent_sigma = 0.95;
    CHECK(calibrated.assess(one).reason.find("not measured: one sample") != std::string::npos);
    one.second_look = chexmask_rt::SecondLook{"pooled"};  // two looks' decodes: a spread of two
    CHECK(calibrated.assess(one).reason.find("mean node std 0.00 px") != std::string::npos);
    q = calibrated.assess(6.0, 0.95, 512, 1024);  // node std 6.00 > 5.31
    CHECK(q.flag && q.reason == "uncertainty above the calibrated threshold: mean node std 6.00 px (1024 frame) > 5.31");
    q = calibrated.assess(6.0, 0.96, 1024, 1024);
    CHECK(q.flag && q.reason == "uncertainty above the calibrated threshold: mean node std 6.00 px (1024 frame) > 5.31; "
                                "mean latent sigma 0.9600 > 0.9573");
    q = calibrated.assess(0.125, 0.957301580812782, 1024, 1024);  // equal to the threshold: not above; ties round to even
    CHECK(!q.flag && q.reason.find("mean node std 0.12 px (1024 frame) <= 5.31") != std::string::npos);
    CHECK(calibrated.assess(2.675, 0.1, 1024, 1024).reason.find("std 2.67 px (1024 frame) <=") != std::string::npos);  // 2.67499999...
    // a score the rule leaves out (1e308, the calibration tool's +inf) never fires and prints as inf
    const QualityAssessor node_only = parse_quality(
        "{\"" + sha + "\": {\"thresholds\": {\"node_std_1024\": 15.5, \"mean_latent_sigma\": 1e308}}}", "q.json", sha);
    CHECK(std::isinf(node_only.rule()->max_latent_sigma));
    q = node_only.assess(2.0, 0.95, 1024, 1024);
    CHECK(!q.flag && q.reason == "within calibrated thresholds (mean node std 2.00 px (1024 frame) <= 15.50, mean latent sigma 0.9500 <= inf)");
    q = node_only.assess(20.0, 1e300, 1024, 1024);
    CHECK(q.flag && q.reason == "uncertainty above the calibrated threshold: mean node std 20.00 px (1024 frame) > 15.50");
    const QualityAssessor other = parse_quality(file, "q.json", std::string(64, 'b'));  // no entry: not calibrated
    q = other.assess(100.0, 5.0, 100, 100);
    CHECK(!q.flag && !q.calibrated && !other.rule());
    CHECK(q.reason == "not calibrated for this model (checkpoint sha256 bbbbbbbbbbbb...): no reliability flag");
    const std::vector<std::pair<std::string, const char*>> malformed = {
        {"{not json", "at byte"}, {"[]", "an array, not an object"}, {"{\"" + sha + "\": 1}", "no thresholds object"},
        {"{\"" + sha + "\": {\"thresholds\": []}}", "no thresholds object"},
        {"{\"" + sha + "\": {\"thresholds\": {\"node_std_1024\": 5}}}", "no thresholds.mean_latent_sigma"},
        {"{\"" + sha + "\": {\"thresholds\": {\"node_std_1024\": \"5\", \"mean_latent_sigma\": 1}}}", "a string, not a number"},
        {"{\"" + sha + "\": {\"thresholds\": {\"node_std_1024\": NaN, \"mean_latent_sigma\": 1}}}", "at byte"}};
    for (const auto& [text, needle] : malformed) {
        expect_throw<ModelError>([&] { parse_quality(text, "dir/m.quality.json", sha); }, text.c_str(), needle);
        expect_throw<ModelError>([&] { parse_quality(text, "dir/m.quality.json", sha); }, text.c_str(),
                                 "dir/m.quality.json: malformed quality calibration file");
    }
    CHECK(default_quality_file("dir/model.onnx") == "dir/model.quality.json");
    CHECK(default_quality_file("a.b.onnx") == "a.b.quality.json" && default_quality_file("m") == "m.quality.json");
    expect_throw<ModelError>([&] { load_quality("dir/model.onnx", "/nonexistent/q.json", sha); }, "missing quality file",
                             "/nonexistent/q.json: quality calibration file not found");
    CHECK(!load_quality("/nonexistent/model.onnx", "", sha).rule());  // no file beside it: not calibrated
    CHECK(!load_quality("", "", sha).rule());                         // from memory: none unless named

    // the non-finite check names the first bad image of the batch
    std::vector<chexmask_rt::Result> results(3, ring_result(500, 400, 160, 120, 1000, 1000));
    check_finite(results, "m.onnx");
    results[1].latent_sigma[2] = std::numeric_limits<double>::infinity();
    results[2].landmarks_mu[7].y = NAN;
    try {
        check_finite(results, "m.onnx");
        CHECK(false);
    } catch (const chexmask_rt::NonFiniteOutputError& e) {
        CHECK(e.index() == 1 && e.reason() == "the engine m.onnx returned NaN or infinite values for this image; the engine is faulty");
        CHECK(std::string(e.what()) == "image 1 of the batch: " + e.reason());
    }
    results.resize(1);  // the image predict was given alone: no position in a batch the caller never made
    results[0].landmarks_std[3].x = -1;
    try {
        check_finite(results, "m.onnx");
        CHECK(false);
    } catch (const chexmask_rt::NonFiniteOutputError& e) {
        CHECK(e.index() == 0 && std::string(e.what()) == e.reason() &&
              e.reason() == "the engine m.onnx returned a negative landmarks_std for this image; the engine is faulty");
    }
}

void test_engine(const std::string& model, const std::string& library, const std::string& not_engine) {
    using chexmask_rt::ModelError;
    chexmask_rt::EngineOptions options;
    options.onnxruntime_library = library;
    expect_throw<ModelError>([&] { chexmask_rt::Engine("/nonexistent.onnx", options); }, "missing model", "not found");
    // an empty path was ": model file not found", naming nothing
    expect_throw<ModelError>([&] { chexmask_rt::Engine("", options); }, "empty model path",
                             "no model file named (the model path is an empty string)");
    if (!not_engine.empty()) {
        expect_throw<ModelError>([&] { chexmask_rt::Engine(not_engine, options); }, "not an engine", "not a");
    }
    const chexmask_rt::Engine engine(model, options);
    CHECK(engine.info().inputsize >= 32);
    expect_throw<chexmask_rt::InputError>([&] { engine.predict(chexmask_rt::ImageView{}, 5, 0); }, "empty view", "");
    const auto wide = gradient(120, 80, 128);
    const auto tall = gradient(70, 90, 70);
    const auto a = engine.predict(view(wide, 120, 80, 128), 5, 1);
    CHECK(a.landmarks.size() == a.landmarks_std.size() && !a.landmarks.empty());
    CHECK(a.height == 80 && a.width == 120 && a.samples == 5 && a.seed == 1);
    CHECK(static_cast<int>(a.latent_sigma.size()) == engine.info().latents);
    expect_throw<chexmask_rt::InputError>([&] { engine.predict(view(wide, 120, 80, 128), 0, 1); }, "samples 0", "samples");

    // the default is the engine's own setting (the shipped model's since version 8: one engine call)
    CHECK(a.second_look.has_value() == engine.info().second_look);
    // the shipped model's calibration sits beside it: every result carries its verdict
    CHECK(a.quality.calibrated && !a.quality.reason.empty());
    CHECK(a.quality.reason == chexmask_rt::detail::load_quality(model, "", engine.info().checkpoint_sha256).assess(a).reason);
    {
        std::ifstream in(model, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto from_memory = chexmask_rt::Engine::from_memory(bytes.data(), bytes.size(), options);
        const auto m = from_memory.predict(view(wide, 120, 80, 128), 5, 1);
        CHECK(!m.quality.calibrated && !m.quality.flag && m.quality.reason.rfind("not calibrated", 0) == 0);
        auto named = options;
        named.quality_file = chexmask_rt::detail::default_quality_file(model);
        const auto n = chexmask_rt::Engine::from_memory(bytes.data(), bytes.size(), named).predict(view(wide, 120, 80, 128), 5, 1);
        CHECK(n.quality.calibrated && n.quality.reason == a.quality.reason && n.quality.flag == a.quality.flag);
        named.quality_file = model + ".missing.json";
        expect_throw<ModelError>([&] { chexmask_rt::Engine(model, named); }, "missing quality_file", ".missing.json: quality calibration file not found");
    }
    const auto one = engine.predict(view(wide, 120, 80, 128), 5, 1, /*second_look=*/false);
    CHECK(!one.second_look.has_value());
    const auto two = engine.predict(view(wide, 120, 80, 128), 5, 1, /*second_look=*/true);
    CHECK(two.second_look.has_value());
    CHECK(same(a, engine.info().second_look ? two : one));
    if (two.second_look->look == "none") CHECK(same(two, one));

    // on the CPU every image of a batch is its own engine call, so it gets exactly its answer alone
    const auto batch = engine.predict_batch({view(wide, 120, 80, 128), view(tall, 70, 90, 70)}, 5, 1);
    CHECK(batch.size() == 2 && batch[1].width == 70);
    CHECK(same(batch[0], a) && same(batch[1], engine.predict(view(tall, 70, 90, 70), 5, 1)));
    expect_throw<chexmask_rt::InputError>([&] { engine.predict_batch({view(wide, 120, 80, 128), view(tall, 0, 90, 70)}, 5, 1); },
                             "a batch with a bad second image", "image 1: image is 0x90 pixels");
    auto together = options;
    together.images_per_call = 2;  // one engine call for both: batched convolutions round differently
    const auto joint = chexmask_rt::Engine(model, together).predict_batch({view(wide, 120, 80, 128), view(tall, 70, 90, 70)}, 5, 1);
    CHECK(joint.size() == 2 && std::fabs(joint[0].landmarks[0].x - a.landmarks[0].x) < 1e-3);
    CHECK(std::fabs(joint[1].landmarks[7].y - batch[1].landmarks[7].y) < 1e-3);
    auto negative = options;
    negative.images_per_call = -1;
    expect_throw<ModelError>([&] { chexmask_rt::Engine(model, negative); }, "negative images_per_call", "images_per_call");
    // refused before ONNX Runtime starts the threads (hundreds take seconds; a refused one hangs it)
    for (const int threads : {-1, chexmask_rt::kMaxIntraOpThreads + 1, std::numeric_limits<int>::min(),
                              std::numeric_limits<int>::max()}) {
        auto bad = options;
        bad.intra_op_threads = threads;
        expect_throw<ModelError>([&] { chexmask_rt::Engine(model, bad); }, "intra_op_threads", "intra_op_threads must be 0");
        expect_throw<ModelError>([&] { chexmask_rt::Engine::from_memory(&threads, sizeof threads, bad); },
                                 "intra_op_threads from memory", "intra_op_threads must be 0");
    }
    auto threaded = options;
    threaded.intra_op_threads = 2;  // the threads split the work, not the answer (rounding aside)
    const auto t = chexmask_rt::Engine(model, threaded).predict(view(wide, 120, 80, 128), 5, 1);
    CHECK(t.landmarks.size() == a.landmarks.size() && std::fabs(t.landmarks[9].y - a.landmarks[9].y) < 1e-3);

    // a moved-from Engine throws instead of crashing, and works again once assigned
    chexmask_rt::Engine from(model, options);
    chexmask_rt::Engine to(std::move(from));
    CHECK(same(to.predict(view(wide, 120, 80, 128), 5, 1), a));
    const char* moved = "the engine was moved from";
    expect_throw<ModelError>([&] { (void)from.info(); }, "moved-from info", moved);
    expect_throw<ModelError>([&] { (void)from.providers(); }, "moved-from providers", moved);
    expect_throw<ModelError>([&] { from.predict(view(wide, 120, 80, 128), 5, 1); }, "moved-from predict", moved);
    expect_throw<ModelError>([&] { from.predict_batch({view(wide, 120, 80, 128)}, 5, 1); }, "moved-from batch", moved);
    from = std::move(to);
    CHECK(same(from.predict(view(wide, 120, 80, 128), 5, 1), a));

    std::vector<chexmask_rt::Result> sequential;
    for (int i = 0; i < 5; ++i) sequential.push_back(engine.predict(view(tall, 70, 90, 70), 7, i));
    std::vector<std::thread> threads;
    std::vector<int> mismatches(8, 0);
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 5; ++i) mismatches[t] += !same(engine.predict(view(tall, 70, 90, 70), 7, i), sequential[i]);
        });
    }
    for (auto& th : threads) th.join();
    for (int m : mismatches) CHECK(m == 0);
}

/// Before any Engine of the process: a library that cannot be loaded is refused, and fixes nothing.
void test_missing_library(const std::string& model) {
    chexmask_rt::EngineOptions bad_lib;
    bad_lib.onnxruntime_library = "/nonexistent/libonnxruntime.so.1";
    expect_throw<chexmask_rt::ModelError>([&] { chexmask_rt::Engine(model, bad_lib); }, "missing ORT library",
                                          "cannot load the ONNX Runtime");
}

/// The log callback runs outside the library's locks: one that opens an engine on the process's first
/// message ("loaded ONNX Runtime", given while the runtime is being set up) must not hang. Run before any
/// other Engine. Then replacing callbacks from several threads while others log (clean under TSan).
void test_log_callback(const std::string& model, const std::string& library) {
    struct Seen {
        std::string model, library;
        std::vector<std::string> messages;
        int nested = 0;
    };
    static Seen seen;
    seen = {model, library, {}, 0};
    chexmask_rt::set_log_callback([](chexmask_rt::LogLevel, const char* message, void* user) {
        auto* s = static_cast<Seen*>(user);
        s->messages.emplace_back(message);
        if (s->nested++ > 0) return;
        chexmask_rt::EngineOptions options;
        options.onnxruntime_library = s->library;
        CHECK(chexmask_rt::Engine(s->model, options).info().inputsize >= 32);
        chexmask_rt_engine* engine = nullptr;  // the C API's too
        CHECK(chexmask_rt_engine_open(s->model.c_str(), nullptr, &engine) == CHEXMASK_RT_OK);
        chexmask_rt_engine_free(engine);
        chexmask_rt::set_log_callback(nullptr);  // from inside a callback: returns, does not wait for itself
    }, &seen);
    chexmask_rt::EngineOptions options;
    options.onnxruntime_library = library;
    CHECK(chexmask_rt::Engine(model, options).info().inputsize >= 32);
    CHECK(seen.nested >= 2 && seen.messages.front().find("loaded ONNX Runtime") == 0);
    chexmask_rt::set_log_callback(nullptr);

    static std::atomic<int> calls{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([t] {
            for (int i = 0; i < 2000; ++i) {
                if (t % 2 == 0) {
                    chexmask_rt_set_log_callback([](int, const char*, void* user) { ++*static_cast<std::atomic<int>*>(user); },
                                                 &calls);
                } else {
                    chexmask_rt::detail::log(chexmask_rt::LogLevel::warning, "test");
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    // the setters' callback is in place now: the loggers may all have run before the first setter
    // (under a loaded sanitizer build they did), so one delivery here is certain
    chexmask_rt::detail::log(chexmask_rt::LogLevel::warning, "delivered");
    chexmask_rt_set_log_callback(nullptr, nullptr);
    const int after = calls.load();
    chexmask_rt::detail::log(chexmask_rt::LogLevel::warning, "dropped");
    CHECK(calls.load() == after && after > 0);
}

/// The C API's contract: status codes, a message per failure, NULL outputs, no exception escaping.
void test_c_api(const std::string& model, const std::string& library) {
    CHECK(chexmask_rt_abi_version() == CHEXMASK_RT_C_ABI_VERSION);
    CHECK(std::strlen(chexmask_rt_version()) > 0);
    static std::vector<std::string> messages;
    chexmask_rt_set_log_callback([](int, const char* m, void*) { messages.emplace_back(m); }, nullptr);

    chexmask_rt_engine_options options;
    chexmask_rt_engine_options_init(&options);
    CHECK(options.struct_size == sizeof options && options.onnxruntime_library == nullptr);
    options.onnxruntime_library = library.c_str();
    chexmask_rt_engine* engine = reinterpret_cast<chexmask_rt_engine*>(&options);  // must become NULL
    CHECK(chexmask_rt_engine_open("/nonexistent.onnx", &options, &engine) == CHEXMASK_RT_MODEL_ERROR);
    CHECK(engine == nullptr && std::strstr(chexmask_rt_last_error(), "not found") != nullptr);
    CHECK(chexmask_rt_engine_open(nullptr, &options, &engine) == CHEXMASK_RT_INPUT_ERROR);  // a bad argument
    CHECK(chexmask_rt_engine_open(model.c_str(), &options, nullptr) == CHEXMASK_RT_INPUT_ERROR);
    const char junk[] = "not an onnx file";
    CHECK(chexmask_rt_engine_open_memory(junk, sizeof junk, &options, &engine) == CHEXMASK_RT_MODEL_ERROR);
    CHECK(std::strstr(chexmask_rt_last_error(), "<memory>") != nullptr);
    CHECK(chexmask_rt_engine_open_memory(nullptr, 0, nullptr, &engine) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_engine_open_memory(nullptr, 100, nullptr, &engine) == CHEXMASK_RT_INPUT_ERROR);
    chexmask_rt_engine_options unset{};  // struct_size 0: not initialised
    CHECK(chexmask_rt_engine_open(model.c_str(), &unset, &engine) == CHEXMASK_RT_INPUT_ERROR);
    unset.struct_size = 1;  // nor is a size smaller than the first option (its options would be ignored)
    CHECK(chexmask_rt_engine_open(model.c_str(), &unset, &engine) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(std::strstr(chexmask_rt_last_error(), "chexmask_rt_engine_options_init") != nullptr);
    options.images_per_call = -1;
    CHECK(chexmask_rt_engine_open(model.c_str(), &options, &engine) == CHEXMASK_RT_MODEL_ERROR);
    CHECK(engine == nullptr && std::strstr(chexmask_rt_last_error(), "images_per_call") != nullptr);
    options.images_per_call = 0;
    for (const int threads : {-1, 257}) {
        options.intra_op_threads = threads;
        CHECK(chexmask_rt_engine_open(model.c_str(), &options, &engine) == CHEXMASK_RT_MODEL_ERROR);
        CHECK(engine == nullptr && std::strstr(chexmask_rt_last_error(), "intra_op_threads") != nullptr);
    }
    options.intra_op_threads = 0;
    options.images_per_call = -1;
    chexmask_rt_engine_options older = options;  // a caller built against the header before images_per_call
    older.struct_size = offsetof(chexmask_rt_engine_options, images_per_call);
    CHECK(chexmask_rt_engine_open(model.c_str(), &older, &engine) == CHEXMASK_RT_OK && engine != nullptr);
    chexmask_rt_engine_free(engine);
    options.images_per_call = 0;

    CHECK(chexmask_rt_engine_open(model.c_str(), &options, &engine) == CHEXMASK_RT_OK && engine != nullptr);
    CHECK(*chexmask_rt_last_error() == '\0');
    bool logged = false;
    for (const std::string& m : messages) logged |= m.find("opened with ONNX Runtime") != std::string::npos;
    CHECK(logged);
    chexmask_rt_set_log_callback(nullptr, nullptr);
    const chexmask_rt_model_info* info = chexmask_rt_engine_info(engine);
    CHECK(info != nullptr && info->inputsize >= 32 && info->latents > 0 && std::strchr(info->id, ':') != nullptr);
    CHECK(std::string(info->organs) == "right_lung:44,left_lung:50,heart:26");  // C callers split landmarks by it

    const auto px = gradient(120, 80, 128);
    chexmask_rt_image image{px.data(), 120, 80, 128, 8, px.size()};
    chexmask_rt_result* result = nullptr;
    CHECK(chexmask_rt_predict(engine, &image, 0, 1, -1, &result) == CHEXMASK_RT_INPUT_ERROR && result == nullptr);
    CHECK(std::strstr(chexmask_rt_last_error(), "samples") != nullptr);
    CHECK(chexmask_rt_predict(engine, &image, 5, 1, 2, &result) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_predict(nullptr, &image, 5, 1, -1, &result) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_predict(engine, nullptr, 5, 1, -1, &result) == CHEXMASK_RT_INPUT_ERROR);
    chexmask_rt_image short_buffer = image;
    short_buffer.size_bytes = 100;
    // samples = kMaxSamples is allowed: with a broken image the complaint is the image's, not the samples'
    chexmask_rt_image no_pixels = image;
    no_pixels.data = nullptr;
    CHECK(chexmask_rt_predict(engine, &no_pixels, chexmask_rt::kMaxSamples, 1, -1, &result) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(std::strstr(chexmask_rt_last_error(), "null") != nullptr);
    CHECK(chexmask_rt_predict(engine, &no_pixels, chexmask_rt::kMaxSamples + 1, 1, -1, &result) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(std::strstr(chexmask_rt_last_error(), "samples") != nullptr);
    CHECK(chexmask_rt_predict(engine, &short_buffer, 5, 1, -1, &result) == CHEXMASK_RT_INPUT_ERROR);
    chexmask_rt_image zeroed_depth = image;  // an 8-bit buffer in a struct left at bit_depth 0 (uint16)
    zeroed_depth.bit_depth = 0;
    zeroed_depth.stride = 120;
    zeroed_depth.size_bytes = 0;
    CHECK(chexmask_rt_predict(engine, &zeroed_depth, 5, 1, -1, &result) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(std::strstr(chexmask_rt_last_error(), "8-bit ones need bit_depth 8") != nullptr);

    CHECK(chexmask_rt_predict(engine, &image, 5, 1, CHEXMASK_RT_SECOND_LOOK_OFF, &result) == CHEXMASK_RT_OK);
    const chexmask_rt_result_fields* r = chexmask_rt_result_get(result);
    chexmask_rt::EngineOptions cpp_options;
    cpp_options.onnxruntime_library = library;
    const chexmask_rt::Result want =
        chexmask_rt::Engine(model, cpp_options).predict(chexmask_rt::ImageView{px.data(), 120, 80, 128, 8, px.size()}, 5, 1, false);
    CHECK(r->landmark_count == want.landmarks.size() && r->latent_count == want.latent_mu.size());
    CHECK(info->landmarks == static_cast<int>(want.landmarks.size()));
    // the generic getters: every row of the table, by name, the same numbers as the C++ Result's
    CHECK(chexmask_rt_field_count() == chexmask_rt::result_fields().size() && chexmask_rt_field_info_at(99) == nullptr);
    for (std::size_t i = 0; i < chexmask_rt_field_count(); ++i) {
        const chexmask_rt_field_info* f = chexmask_rt_field_info_at(i);
        chexmask_rt_field_values got{};
        CHECK(chexmask_rt_result_field(result, f->name, &got) == CHEXMASK_RT_OK);
        const chexmask_rt::FieldValues cpp = chexmask_rt::field_values(want, i);
        CHECK(got.rows == cpp.rows && got.columns == cpp.columns &&
              (cpp.rows == 0 || std::memcmp(got.data, cpp.data, cpp.rows * cpp.columns * sizeof(double)) == 0));
    }
    chexmask_rt_field_values none{};
    CHECK(chexmask_rt_result_field(result, "no_such_field", &none) == CHEXMASK_RT_INPUT_ERROR && none.data == nullptr);
    // a name is matched whole, not as a prefix of a field's name (another field's numbers with OK status)
    CHECK(chexmask_rt_result_field(result, "landmark", &none) == CHEXMASK_RT_INPUT_ERROR && none.data == nullptr);
    CHECK(chexmask_rt_result_field(result, "", &none) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_result_field(nullptr, "landmarks", &none) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(r->second_look == nullptr && r->height == 80 && r->width == 120 && r->samples == 5 && r->seed == 1);
    CHECK(r->quality_calibrated == 1 && r->quality_flag == (want.quality.flag ? 1 : 0) && r->quality_reason == want.quality.reason);
    bool equal = r->mean_node_std == want.mean_node_std && r->mean_latent_sigma == want.mean_latent_sigma;
    for (std::size_t i = 0; i < want.landmarks.size(); ++i) {
        equal &= r->landmarks[2 * i] == want.landmarks[i].x && r->landmarks[2 * i + 1] == want.landmarks[i].y;
        equal &= r->landmarks_std[2 * i + 1] == want.landmarks_std[i].y && r->landmarks_mu[2 * i] == want.landmarks_mu[i].x;
        equal &= r->node_uncertainty[i] == want.node_uncertainty[i];
    }
    for (std::size_t i = 0; i < want.latent_mu.size(); ++i)
        equal &= r->latent_mu[i] == want.latent_mu[i] && r->latent_sigma[i] == want.latent_sigma[i];
    CHECK(equal);

    // a batch: each image gets exactly its single-image answer; a bad image fails the whole call by index
    const auto other = gradient(90, 100, 90);
    chexmask_rt_image pair[2] = {image, {other.data(), 90, 100, 90, 8, other.size()}};
    chexmask_rt_result* batch[2] = {nullptr, nullptr};
    CHECK(chexmask_rt_predict_batch(engine, pair, 2, 5, 1, CHEXMASK_RT_SECOND_LOOK_OFF, batch) == CHEXMASK_RT_OK);
    chexmask_rt_result* alone = nullptr;
    CHECK(chexmask_rt_predict(engine, &pair[1], 5, 1, CHEXMASK_RT_SECOND_LOOK_OFF, &alone) == CHEXMASK_RT_OK);
    for (auto [got, single] : {std::pair{batch[0], result}, std::pair{batch[1], alone}}) {
        const chexmask_rt_result_fields* g = chexmask_rt_result_get(got);
        const chexmask_rt_result_fields* w = chexmask_rt_result_get(single);
        CHECK(g->width == w->width && g->height == w->height && g->landmark_count == w->landmark_count &&
              std::memcmp(g->landmarks, w->landmarks, 2 * w->landmark_count * sizeof(double)) == 0 &&
              std::memcmp(g->landmarks_std, w->landmarks_std, 2 * w->landmark_count * sizeof(double)) == 0);
    }
    chexmask_rt_result_free(batch[0]);
    chexmask_rt_result_free(batch[1]);
    chexmask_rt_result_free(alone);
    pair[1].width = 0;
    batch[0] = batch[1] = result;  // must become NULL
    CHECK(chexmask_rt_predict_batch(engine, pair, 2, 5, 1, -1, batch) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(batch[0] == nullptr && batch[1] == nullptr && std::strstr(chexmask_rt_last_error(), "image 1: ") != nullptr);
    CHECK(chexmask_rt_predict_batch(engine, pair, 0, 5, 1, -1, batch) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_predict_batch(engine, nullptr, 2, 5, 1, -1, batch) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_predict_batch(engine, pair, 1, 5, 1, 7, batch) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_predict_batch(engine, pair, 1, 5, 1, -1, nullptr) == CHEXMASK_RT_INPUT_ERROR);
    // a count that wrapped below zero (n - 1 with n == 0): refused before out[] is touched (it was cleared
    // up to count first, far past the array), with or without the other arguments
    batch[0] = batch[1] = result;
    for (const chexmask_rt_engine* e : {static_cast<const chexmask_rt_engine*>(engine),
                                        static_cast<const chexmask_rt_engine*>(nullptr)}) {
        CHECK(chexmask_rt_predict_batch(e, e ? pair : nullptr, SIZE_MAX, 5, 1, -1, batch) == CHEXMASK_RT_INPUT_ERROR);
        CHECK(batch[0] == result && batch[1] == result);
    }
    CHECK(std::strstr(chexmask_rt_last_error(), "NULL") != nullptr);
    CHECK(chexmask_rt_predict_batch(engine, pair, SIZE_MAX, 5, 1, -1, batch) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(std::strstr(chexmask_rt_last_error(), "wrap below zero") != nullptr);

    chexmask_rt_result_free(result);
    CHECK(chexmask_rt_predict(engine, &image, 5, 1, CHEXMASK_RT_SECOND_LOOK_ON, &result) == CHEXMASK_RT_OK);
    CHECK(chexmask_rt_result_get(result)->second_look != nullptr);
    chexmask_rt_result_free(result);
    chexmask_rt_result_free(nullptr);
    chexmask_rt_engine_free(engine);
    chexmask_rt_engine_free(nullptr);
    CHECK(chexmask_rt_result_get(nullptr) == nullptr && chexmask_rt_engine_info(nullptr) == nullptr);
}

}  // namespace

/// An engine whose graph has another landmark count, with organs metadata that says so: both looks
/// run on its own organs and every field has its size (under ASan: nothing is read past an output).
// The two session settings C++ and Python have reach C callers too (they were missing from the struct).
void test_c_api_session_settings(const std::string& model, const std::string& library) {
    const auto px = gradient(120, 80, 128);
    const chexmask_rt_image image{px.data(), 120, 80, 128, 8, px.size()};
    auto landmarks = [&](int layout, int pattern, std::size_t struct_size) {
        chexmask_rt_engine_options options;
        chexmask_rt_engine_options_init(&options);
        options.onnxruntime_library = library.c_str();
        options.layout_optimizations = layout;
        options.memory_pattern = pattern;
        if (struct_size != 0) options.struct_size = struct_size;
        chexmask_rt_engine* engine = nullptr;
        chexmask_rt_result* result = nullptr;
        std::vector<double> out;
        CHECK(chexmask_rt_engine_open(model.c_str(), &options, &engine) == CHEXMASK_RT_OK);
        CHECK(chexmask_rt_predict(engine, &image, 4, 1, CHEXMASK_RT_SECOND_LOOK_OFF, &result) == CHEXMASK_RT_OK);
        if (result != nullptr) {
            const chexmask_rt_result_fields* r = chexmask_rt_result_get(result);
            out.assign(r->landmarks, r->landmarks + 2 * r->landmark_count);
        }
        chexmask_rt_result_free(result);
        chexmask_rt_engine_free(engine);
        return out;
    };
    const std::vector<double> plain = landmarks(0, 0, 0);
    CHECK(!plain.empty() && landmarks(1, 0, 0) != plain);  // the blocked layout rounds otherwise: it was applied
    CHECK(landmarks(0, 1, 0) == plain);                     // the memory plan changes no number
    // a caller built before these fields: whatever lies past its struct is not read
    CHECK(landmarks(1, 1, offsetof(chexmask_rt_engine_options, layout_optimizations)) == plain);
}

void test_other_anatomy(const std::string& path, const std::string& library) {
    chexmask_rt::EngineOptions options;
    options.onnxruntime_library = library;
    const chexmask_rt::Engine engine(path, options);
    const int n = engine.info().landmarks;
    CHECK(n != 120 && engine.info().organs.size() >= 2);
    std::string organs;  // what the C API reports, for callers that split the landmarks into contours
    for (const chexmask_rt::Organ& o : engine.info().organs)
        organs += (organs.empty() ? "" : ",") + o.name + ":" + std::to_string(o.count);
    chexmask_rt_engine_options c_options;
    chexmask_rt_engine_options_init(&c_options);
    c_options.onnxruntime_library = library.c_str();
    chexmask_rt_engine* c_engine = nullptr;
    CHECK(chexmask_rt_engine_open(path.c_str(), &c_options, &c_engine) == CHEXMASK_RT_OK);
    CHECK(std::string(chexmask_rt_engine_info(c_engine)->organs) == organs && organs != "right_lung:44,left_lung:50,heart:26");
    chexmask_rt_engine_free(c_engine);
    const auto px = gradient(100, 80, 100);
    for (const bool second_look : {false, true}) {
        const auto r = engine.predict(view(px, 100, 80, 100), 3, 0, second_look);
        CHECK(static_cast<int>(r.landmarks.size()) == n && static_cast<int>(r.landmarks_std.size()) == n &&
              static_cast<int>(r.landmarks_mu.size()) == n && static_cast<int>(r.node_uncertainty.size()) == n);
        CHECK(r.second_look.has_value() == second_look);
    }
}

void test_wrong_engine(const std::string& path, const std::string& library) {
    chexmask_rt::EngineOptions options;
    options.onnxruntime_library = library;
    const auto px = gradient(100, 80, 100);
    for (const bool second_look : {false, true}) {
        expect_throw<chexmask_rt::ModelError>(
            [&] { chexmask_rt::Engine(path, options).predict(view(px, 100, 80, 100), 3, 0, second_look); },
            path.c_str(), path.c_str());
    }
}

/// SHA-256: FIPS 180-4's examples, and the CPU's SHA instructions (where this CPU has them) against the
/// portable code at every length to 300 bytes and across updates that split blocks.
void test_onnxruntime_reasons() {
    using chexmask_rt::detail::without_source_location;
    // as onnxruntime-gpu 1.31 logs a CUDA provider it cannot load (its exception says only "Failed to
    // load shared library")
    CHECK(without_source_location("/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 "
                                  "onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : "
                                  "FAIL : Failed to load library libonnxruntime_providers_cuda.so with error: "
                                  "libcublasLt.so.13: cannot open shared object file\nsecond line") ==
          "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared "
          "object file");
    CHECK(without_source_location("plain words") == "plain words");
    CHECK(without_source_location("x [ONNXRuntimeError] : 1") == "x [ONNXRuntimeError] : 1");  // cut: kept whole
}

void test_sha256() {
    namespace detail = chexmask_rt::detail;
    const auto hex = [](const std::string& message, bool cpu) {
        detail::Sha256 hasher(cpu);
        hasher.update(message.data(), message.size());
        return hasher.hex();
    };
    for (bool cpu : {false, true}) {
        CHECK(hex("", cpu) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        CHECK(hex("abc", cpu) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        CHECK(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", cpu) ==
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        CHECK(hex(std::string(1000000, 'a'), cpu) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }
    std::string bytes;
    std::uint32_t x = 12345;
    for (int i = 0; i < 300; ++i) bytes += static_cast<char>((x = x * 1103515245u + 12345u) >> 24);
    for (std::size_t n = 0; n <= bytes.size(); ++n) CHECK(hex(bytes.substr(0, n), true) == hex(bytes.substr(0, n), false));
    for (std::size_t split : {1u, 63u, 64u, 65u, 130u}) {
        detail::Sha256 hasher;
        hasher.update(bytes.data(), split);
        hasher.update(bytes.data() + split, bytes.size() - split);
        CHECK(hasher.hex() == hex(bytes, false));
    }
    std::cout << "sha256: " << (detail::sha256_uses_cpu_instructions() ? "CPU instructions" : "portable code") << "\n";
}

/// The byte check of an engine's seal on bytes around a seal entry (no ONNX needed): the sealed bytes
/// pass; every one-byte change and every cut either fails or leaves no entry to check (the engine's
/// mark, which the backend reads from the metadata, covers that case; tests/test_model_integrity.py).
void test_integrity_bytes() {
    namespace detail = chexmask_rt::detail;
    using chexmask_rt::InputError;
    using chexmask_rt::ModelError;
    const std::string entry = std::string{'\x0a', static_cast<char>(sizeof detail::kIntegrityKey - 1)} +
                              detail::kIntegrityKey + "\x12\x40" + std::string(64, '0');
    const std::string sealed = detail::sealed_engine("graph bytes" + entry + "more metadata");
    const auto check = [](const std::string& bytes) {
        return detail::check_integrity(detail::ModelSource{"<memory>", bytes.data(), bytes.size()}, "");
    };
    CHECK(check(sealed));
    int refused = 0, unchecked = 0;
    for (std::size_t at = 0; at < sealed.size(); ++at) {
        std::string damaged = sealed;
        damaged[at] = static_cast<char>(damaged[at] ^ 0x20);
        try {
            if (!check(damaged)) ++unchecked;
        } catch (const ModelError&) {
            ++refused;
        }
    }
    CHECK(unchecked == 32);  // the entry's tag, length, key and value tag: no longer the entry
    CHECK(refused == static_cast<int>(sealed.size()) - 32);
    for (std::size_t cut = 0; cut < sealed.size(); ++cut) {
        const std::string part = sealed.substr(0, cut);
        try {
            CHECK(!check(part));  // refused, or the entry is gone
        } catch (const ModelError&) {
        }
    }
    const std::string pin = detail::sha256_hex(sealed.data(), sealed.size());
    CHECK(detail::check_integrity(detail::ModelSource{"<memory>", sealed.data(), sealed.size()}, pin));
    expect_throw<ModelError>([&] { detail::check_integrity(detail::ModelSource{"<memory>", "x", 1}, pin); },
                             "a pinned sha256 of other bytes", "not the expected");
    expect_throw<InputError>([] { detail::sealed_engine("no entry"); }, "sealing bytes without the entry",
                             "one chexmask_rt.integrity_sha256 entry");
}

void test_polygon_mask() {
    using chexmask_rt::Point;
    using chexmask_rt::polygon_mask;
    // Worked by hand: the outline is the 8-connected lines (1,1)-(2,2)-(2,3)-(3,4) and (3,4)-(4,3)-(4,2)-(5,1)
    // plus row 1; rows 2 and 3 fill from the left crossing rounded up to the right one rounded down.
    const std::vector<std::uint8_t> triangle = polygon_mask({{1.9, 1.2}, {5.7, 1.0}, {3.0, 4.99}}, 6, 7);
    const char* want =
        "......."
        ".#####."
        "..###.."
        "..###.."
        "...#..."
        ".......";
    CHECK(triangle.size() == 42);
    for (std::size_t i = 0; i < triangle.size() && i < 42; ++i) CHECK(triangle[i] == (want[i] == '#' ? 255 : 0));
    const auto count = [](const std::vector<std::uint8_t>& m) { return std::count(m.begin(), m.end(), 255); };
    CHECK(count(polygon_mask({{2.0, 3.0}}, 5, 5)) == 1);                                  // one point: one pixel
    CHECK(count(polygon_mask({{-9.0, -9.0}, {-1.0, -9.0}, {-1.0, 30.0}}, 5, 5)) == 0);    // left of the image
    const double far = 1e300;  // clamped to +-4 * max(h, w), never overflowing: the whole image
    CHECK(count(polygon_mask({{-far, -far}, {far, -far}, {far, far}, {-far, far}}, 40, 30)) == 40 * 30);
    CHECK(count(polygon_mask({{0.0, 0.0}, {1e9, 0.0}}, 1, 65536)) == 65536);

    using chexmask_rt::InputError;
    const std::vector<Point> ok{{1, 1}, {3, 1}, {2, 3}};
    expect_throw<InputError>([] { polygon_mask({{1, 1}, {NAN, 2}}, 5, 5); }, "NaN point", "point 1 is not finite");
    expect_throw<InputError>([] { polygon_mask({{INFINITY, 1}}, 5, 5); }, "infinite point", "not finite");
    expect_throw<InputError>([] { polygon_mask({{1, -INFINITY}}, 5, 5); }, "-inf point", "not finite");
    expect_throw<InputError>([] { polygon_mask({}, 5, 5); }, "no points", "no points");
    expect_throw<InputError>([&] { polygon_mask(ok, 0, 5); }, "height 0", "outside 1..65536");
    expect_throw<InputError>([&] { polygon_mask(ok, 5, -1); }, "width -1", "outside 1..65536");
    expect_throw<InputError>([&] { polygon_mask(ok, chexmask_rt::kMaxSide + 1, 1); }, "height 65537", "outside");

    // The C API fills the caller's buffer with the same bytes, and refuses what it cannot fill.
    const double xy[] = {1.9, 1.2, 5.7, 1.0, 3.0, 4.99};
    std::vector<std::uint8_t> buffer(43, 7);
    CHECK(chexmask_rt_polygon_mask(xy, 3, 6, 7, buffer.data(), 42) == CHEXMASK_RT_OK);
    CHECK(std::equal(triangle.begin(), triangle.end(), buffer.begin()) && buffer[42] == 7);  // nothing past 42
    CHECK(chexmask_rt_polygon_mask(xy, 3, 6, 7, buffer.data(), 41) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(std::strstr(chexmask_rt_last_error(), "needs 42") != nullptr);
    CHECK(chexmask_rt_polygon_mask(xy, 3, 6, 7, nullptr, 42) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_polygon_mask(nullptr, 3, 6, 7, buffer.data(), 42) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_polygon_mask(xy, 0, 6, 7, buffer.data(), 42) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(chexmask_rt_polygon_mask(xy, 3, 0, 7, buffer.data(), 42) == CHEXMASK_RT_INPUT_ERROR);
    const double bad[] = {1.0, 1.0, NAN, 2.0};
    std::fill(buffer.begin(), buffer.end(), 7);
    CHECK(chexmask_rt_polygon_mask(bad, 2, 6, 7, buffer.data(), 42) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(std::strstr(chexmask_rt_last_error(), "not finite") != nullptr);
    CHECK(chexmask_rt_polygon_mask(xy, 0, 6, 7, buffer.data(), 42) == CHEXMASK_RT_INPUT_ERROR);
    // a count no array can have is the caller's mistake, not the machine's (was RUNTIME_ERROR "vector::reserve")
    CHECK(chexmask_rt_polygon_mask(xy, SIZE_MAX, 6, 7, buffer.data(), 42) == CHEXMASK_RT_INPUT_ERROR);
    CHECK(std::strstr(chexmask_rt_last_error(), "points are more than memory holds") != nullptr);
    CHECK(std::count(buffer.begin(), buffer.end(), 7) == 43);  // a refused polygon leaves the buffer alone
}

int main(int argc, char** argv) {
    test_noise();
    test_cgroup_quota();
    test_bad_images();
    test_bit_depth_inference();
    test_second_look();
    test_schema_and_metadata();
    test_json();
    test_quality();
    test_polygon_mask();
    test_onnxruntime_reasons();
    test_sha256();
    test_integrity_bytes();
    if (argc >= 3) {
        test_missing_library(argv[1]);
        test_log_callback(argv[1], argv[2]);  // it needs the process's first Engine
        test_engine(argv[1], argv[2], argc >= 4 ? argv[3] : "");
        test_c_api(argv[1], argv[2]);
        test_c_api_session_settings(argv[1], argv[2]);
    }
    else std::cerr << "(engine tests skipped: pass MODEL.onnx LIBONNXRUNTIME)\n";
    // engines named other_anatomy*.onnx must work on their own organs; every other one must be refused
    for (int i = 4; i < argc; ++i) {
        if (std::strstr(argv[i], "other_anatomy") != nullptr) test_other_anatomy(argv[i], argv[2]);
        else test_wrong_engine(argv[i], argv[2]);
    }
    std::cout << (g_failures ? "FAILED " : "OK ") << g_failures << " failures\n";
    return g_failures ? 1 : 0;
}
