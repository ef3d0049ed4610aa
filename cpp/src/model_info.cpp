// An engine's ModelInfo, parsed and validated in this one place: the metadata's entries and
// bounds, then the graph's declared shapes, which give the counts (inputsize, latents, landmarks)
// that the metadata and the organs must agree with.
#include "internal.hpp"

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace chexmask_rt {
namespace {

using detail::shown;

constexpr const char* kPrefix = "chexmask_rt.";
constexpr int kFormatVersion = 1;
constexpr std::int64_t kMaxLandmarks = 65536;
constexpr std::size_t kMaxLabel = 64;  // DICOM outputs carry the version as a Long String

int parse_int(const std::string& text, const std::string& key, const std::string& source) {
    std::size_t used = 0;
    int value = 0;
    try {
        value = std::stoi(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size()) {
        throw ModelError(source + ": malformed engine metadata (" + kPrefix + key + "=" + shown(text) + ")");
    }
    return value;
}

// Exactly what `chexmask-rt export` writes: any other text would otherwise read as false, and a
// trained engine as a placeholder.
bool parse_bool(const std::string& text, const std::string& key, const std::string& source) {
    if (text == "true") return true;
    if (text == "false") return false;
    throw ModelError(source + ": malformed engine metadata (" + kPrefix + key + "=" + shown(text) + "): true or false");
}


// "right_lung:44,left_lung:50,heart:26": names unique and non-empty, counts 1..65536.
std::vector<Organ> parse_organs(const std::string& text, const std::string& source) {
    const auto bad = [&](const std::string& why) {
        return ModelError(source + ": malformed engine metadata (" + kPrefix + "organs=" + shown(text) + "): " + why);
    };
    std::vector<Organ> organs;
    std::set<std::string> seen;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, end - start);
        const std::size_t colon = item.rfind(':');
        if (colon == std::string::npos || colon == 0) throw bad("expected name:count items separated by commas");
        Organ organ{item.substr(0, colon), 0};
        std::size_t used = 0;
        try {
            organ.count = std::stoi(item.substr(colon + 1), &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used == 0 || used != item.size() - colon - 1 || organ.count < 1 || organ.count > 65536) {
            throw bad("the count of '" + shown(organ.name) + "' is not an integer in 1..65536");
        }
        if (!seen.insert(organ.name).second) throw bad("'" + shown(organ.name) + "' is named twice");
        organs.push_back(organ);
        start = end + 1;
    }
    return organs;
}

int total(const std::vector<Organ>& organs, const std::string& source) {
    std::int64_t n = 0;  // up to 65536 counts each: an int could wrap to a small, plausible total
    for (const Organ& o : organs) n += o.count;
    if (n > kMaxLandmarks) {
        throw ModelError(source + ": malformed engine metadata (" + kPrefix + "organs): " + std::to_string(n) +
                         " landmarks in all, more than " + std::to_string(kMaxLandmarks));
    }
    return static_cast<int>(n);
}

// A hash as the exporter writes it (lowercase hex): it is quoted in reasons and keys calibrations.
void check_hex(const std::string& text, const char* key, bool may_be_empty, const std::string& source) {
    const bool hex = std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    if (!hex || text.size() > 64 || (text.empty() && !may_be_empty)) {
        throw ModelError(source + ": malformed engine metadata (" + kPrefix + key + "=" + shown(text) +
                         "): at most 64 lowercase hex digits");
    }
}

std::string organs_text(const std::vector<Organ>& organs) {
    std::string out;
    for (const Organ& o : organs) out += (out.empty() ? "" : ", ") + o.name + " " + std::to_string(o.count);
    return out;
}

}  // namespace

namespace detail {

// A file's text as an error message quotes it: control characters escaped, about `bytes` bytes (an
// engine's 10 MB entry made one 33 MB line), cut between characters (a cut UTF-8 sequence made the
// message itself undecodable) and then marked "...".
std::string shown(const std::string& text, std::size_t bytes) {
    std::string out;
    std::size_t i = 0;
    while (i < text.size() && out.size() < bytes) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7F) {
            static const char* hex = "0123456789abcdef";
            out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
            ++i;
            continue;
        }
        std::size_t end = i + 1;  // the whole character: its continuation bytes too
        while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
        out.append(text, i, end - i);
        i = end;
    }
    return i < text.size() ? out + "..." : out;
}

// Python reads every entry as str: bytes that are not strict UTF-8 (what Python's decoder takes:
// no overlong forms, surrogates or code points past U+10FFFF) must be refused here, not fail there.
bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<unsigned char>(text[i]);
        int extra = 0;
        unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
        if (lead < 0x80) extra = 0;
        else if (lead >= 0xC2 && lead <= 0xDF) extra = 1;
        else if (lead >= 0xE0 && lead <= 0xEF) extra = 2, low = lead == 0xE0 ? 0xA0 : 0x80, high = lead == 0xED ? 0x9F : 0xBF;
        else if (lead >= 0xF0 && lead <= 0xF4) extra = 3, low = lead == 0xF0 ? 0x90 : 0x80, high = lead == 0xF4 ? 0x8F : 0xBF;
        else return false;
        if (text.size() - i <= static_cast<std::size_t>(extra)) return false;
        for (int k = 1; k <= extra; ++k) {
            const auto c = static_cast<unsigned char>(text[i + k]);
            if (c < (k == 1 ? low : 0x80) || c > (k == 1 ? high : 0xBF)) return false;
        }
        i += 1 + extra;
    }
    return true;
}

std::string model_id_problem(const std::string& name, const std::string& version, bool dicom) {
    for (const auto& [key, text] : {std::pair<const char*, const std::string&>{"model_name", name}, {"model_version", version}}) {
        const std::string what = std::string(key) + " '" + shown(text) + "' ";
        if (text.find_first_not_of(" \t") == std::string::npos) return what + "is empty: results name the model by name:version";
        // C0 and DEL, and C1 (U+0080..U+009F, 0xC2 0x80..0x9F in UTF-8): raw in every CSV row, and none
        // may stand in a DICOM Long String
        for (std::size_t i = 0; i < text.size(); ++i) {
            const auto c = static_cast<unsigned char>(text[i]);
            const bool c1 = c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xA0;
            if (c < 0x20 || c == 0x7F || c1 || c == '\\') {
                return what + "holds a backslash or a control character, which results and DICOM outputs cannot carry";
            }
        }
    }
    if (version.find(':') != std::string::npos) {
        return "model_version '" + shown(version) + "' holds a ':', so it could not be read back from the id name:version";
    }
    const auto characters = std::count_if(version.begin(), version.end(),
                                          [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
    if (dicom && static_cast<std::size_t>(characters) > kMaxLabel) {
        return "model_version '" + shown(version) + "' is longer than 64 characters, which DICOM outputs cannot carry";
    }
    return "";
}

const std::vector<Organ>& default_organs() {
    static const std::vector<Organ> organs = {{"right_lung", 44}, {"left_lung", 50}, {"heart", 26}};
    return organs;
}

}  // namespace detail

ModelInfo parse_model_info(const std::map<std::string, std::string>& props, const std::string& source) {
    for (const auto& [key, value] : props) {
        if (!detail::valid_utf8(key) || !detail::valid_utf8(value)) throw ModelError(source + ": engine metadata is not valid UTF-8");
    }
    std::map<std::string, std::string> get;
    const std::string prefix = kPrefix;
    for (const auto& [key, value] : props) {
        if (key.compare(0, prefix.size(), prefix) == 0) get[key.substr(prefix.size())] = value;
    }
    auto value_or = [&get](const std::string& key, const std::string& fallback) {
        const auto it = get.find(key);
        return it == get.end() ? fallback : it->second;
    };
    if (!get.count("format_version")) {
        throw ModelError(source + ": not a chexmask-rt engine (no " + prefix +
                         "format_version metadata); make one with 'chexmask-rt export'");
    }
    ModelInfo info;
    info.format_version = parse_int(get["format_version"], "format_version", source);
    if (info.format_version != kFormatVersion) {
        throw ModelError(source + ": not a chexmask-rt engine of this release: engine format version " +
                         std::to_string(info.format_version) + ", this chexmask-rt reads version " +
                         std::to_string(kFormatVersion) + "; re-export it with this release");
    }
    std::string missing;
    for (const char* key : {"inputsize", "latents", "skip", "checkpoint_sha256"}) {
        if (!get.count(key)) missing += (missing.empty() ? "" : ", ") + prefix + key;
    }
    if (!missing.empty()) throw ModelError(source + ": engine metadata lacks " + missing);
    info.inputsize = parse_int(get["inputsize"], "inputsize", source);
    info.latents = parse_int(get["latents"], "latents", source);
    info.skip = parse_bool(get["skip"], "skip", source);
    info.checkpoint_sha256 = get["checkpoint_sha256"];
    check_hex(info.checkpoint_sha256, "checkpoint_sha256", false, source);
    info.model_name = value_or("model_name", "hybridgnet");
    info.model_version = value_or("model_version", "unversioned");
    if (const std::string problem = detail::model_id_problem(info.model_name, info.model_version, false); !problem.empty()) {
        throw ModelError(source + ": malformed engine metadata (" + kPrefix + problem + ")");
    }
    info.trained = parse_bool(value_or("trained", "true"), "trained", source);
    info.description = value_or("description", "");
    info.second_look = parse_bool(value_or("second_look", "false"), "second_look", source);
    info.has_samples_output = parse_bool(value_or("samples_output", "false"), "samples_output", source);
    info.landmark_offsets_sha256 = value_or("landmark_offsets_sha256", "");
    check_hex(info.landmark_offsets_sha256, "landmark_offsets_sha256", true, source);
    info.organs = get.count("organs") ? parse_organs(get["organs"], source) : detail::default_organs();
    info.landmarks = total(info.organs, source);
    // it opened, then every predict with the engine's default failed
    if (info.second_look && std::none_of(info.organs.begin(), info.organs.end(), detail::is_lung)) {
        throw ModelError(source + ": malformed engine metadata (" + kPrefix + "second_look=true, but its organs " +
                         organs_text(info.organs) + " name no lung for the second look to frame)");
    }
    info.metadata = props;
    if (info.inputsize < 32 || info.inputsize % 32 != 0 || info.inputsize > detail::kMaxEngineInputsize ||
        info.latents < 1 || info.latents > detail::kMaxEngineLatents) {
        throw ModelError(source + ": implausible engine metadata inputsize=" + std::to_string(info.inputsize) +
                         " latents=" + std::to_string(info.latents));
    }
    return info;
}

namespace detail {

std::vector<std::int64_t> expected_shape(const std::string& name, const ModelInfo& info) {
    const std::int64_t s = info.inputsize, latents = info.latents, nodes = info.landmarks;
    if (name == "image") return {0, 1, s, s};
    if (name == "eps") return {0, latents};
    for (const FieldInfo& field : result_fields()) {
        if (name != field.output) continue;
        switch (field.kind) {
            case FieldKind::Position:
            case FieldKind::Spread: return {0, nodes, 2};
            case FieldKind::Vector: return {0, latents};
            case FieldKind::Samples: return {0, 0, nodes, 2};
        }
    }
    return {};
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + (shape[i] > 0 ? std::to_string(shape[i]) : "?");
    return out + "]";
}

namespace {

const TensorDecl* find(const std::vector<TensorDecl>& tensors, const std::string& name) {
    const auto it = std::find_if(tensors.begin(), tensors.end(), [&](const TensorDecl& t) { return t.name == name; });
    return it == tensors.end() ? nullptr : &*it;
}

/// Why `expected` (a shape from expected_shape) holds, in words for the message.
std::string why(const std::vector<std::int64_t>& expected, const ModelInfo& info, bool organs_given) {
    if (expected.back() == 2) {
        if (organs_given) {
            return "the metadata's organs (" + std::string(kPrefix) + "organs: " + organs_text(info.organs) + ") have " +
                   std::to_string(info.landmarks) + " landmarks";
        }
        return "the runtime's anatomy has " + std::to_string(info.landmarks) + " landmarks (" +
               organs_text(info.organs) + "; an engine with others names them in " + kPrefix + "organs)";
    }
    if (expected.size() == 4) return "the metadata says inputsize " + std::to_string(info.inputsize);
    return "the metadata says latents " + std::to_string(info.latents);
}

/// Every fixed dimension `name` declares must be what the metadata says: a mismatch is a
/// ModelError at load, not a wrong read later. An input's free dimensions (images, samples), which
/// the runtime sets on each call, must be free: an engine with K fixed at 50 loaded and then failed
/// every call of another K.
void check_declared(const TensorDecl& tensor, const ModelInfo& info, bool organs_given, const std::string& source,
                    bool input) {
    const std::vector<std::int64_t> expected = expected_shape(tensor.name, info);
    if (expected.empty()) return;
    std::vector<std::int64_t> want(expected);
    for (auto& d : want) d = d > 0 ? d : -1;
    const std::string want_text = "float32 " + shape_text(want);
    if (!tensor.is_float || tensor.shape.size() != expected.size()) {
        throw ModelError(source + ": engine tensor '" + tensor.name + "' is not " + want_text + " (declared " +
                         shape_text(tensor.shape) + ")");
    }
    for (std::size_t i = 0; i < expected.size(); ++i) {
        if (expected[i] == 0 && input && tensor.shape[i] > 0) {
            throw ModelError(source + ": engine input '" + tensor.name + "' fixes its dimension " + std::to_string(i) +
                             " (declared " + shape_text(tensor.shape) + ", " + want_text + " expected): the runtime "
                             "sets the number of " + (tensor.name == "eps" ? "samples" : "images") + " there on "
                             "each call; export it with that axis dynamic, as chexmask-rt export does");
        }
        if (expected[i] == 0) continue;
        if (tensor.shape[i] <= 0) {
            throw ModelError(source + ": engine tensor '" + tensor.name + "' does not declare its shape " +
                             shape_text(tensor.shape) + " (" + want_text + " expected: " +
                             why(expected, info, organs_given) + "); re-export it with chexmask-rt export");
        }
        if (tensor.shape[i] != expected[i]) {
            throw ModelError(source + ": engine graph disagrees with its metadata: '" + tensor.name + "' is " +
                             shape_text(tensor.shape) + ", but " + why(expected, info, organs_given) + " (" +
                             want_text + ")");
        }
    }
}

}  // namespace

ModelInfo parse_model_info(const std::map<std::string, std::string>& props, const GraphDecl& graph,
                           const std::string& source) {
    ModelInfo info = chexmask_rt::parse_model_info(props, source);
    std::vector<std::string> input_names;
    for (const TensorDecl& t : graph.inputs) input_names.push_back(t.name);
    std::string missing;
    bool samples = true;
    for (const FieldInfo& field : result_fields()) {
        const bool has = find(graph.outputs, field.output) != nullptr;
        if (field.need == FieldNeed::Required && !has) missing += std::string(" ") + field.output;
        if (field.kind == FieldKind::Samples) samples &= has;
    }
    if (input_names != std::vector<std::string>{"image", "eps"} || !missing.empty()) {
        throw ModelError(source + ": engine inputs/outputs do not match chexmask-rt format " +
                         std::to_string(info.format_version) + " (missing outputs:" +
                         (missing.empty() ? std::string(" none") : missing) + ")");
    }
    // what the graph says wins over the samples_output entry, which only ever described it
    info.has_samples_output = samples;
    const bool organs_given = info.metadata.count(std::string(kPrefix) + "organs") != 0;
    // inputs first: a wrong inputsize or latents is named as such, before the landmark count
    for (const std::vector<TensorDecl>* tensors : {&graph.inputs, &graph.outputs})
        for (const TensorDecl& t : *tensors) check_declared(t, info, organs_given, source, tensors == &graph.inputs);
    return info;
}

}  // namespace detail
}  // namespace chexmask_rt
