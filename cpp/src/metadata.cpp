// Engine metadata validation, the same rules as runtime/chexmask_rt/metadata.py.
#include "internal.hpp"

#include <string>
#include <string_view>

namespace chexmask_rt::detail {
namespace {

constexpr const char* kPrefix = "chexmask_rt.";
constexpr int kFormatVersion = 1;

int parse_int(const std::string& text, const std::string& key, const std::string& source) {
    std::size_t used = 0;
    int value = 0;
    try {
        value = std::stoi(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size()) {
        throw ModelError(source + ": malformed engine metadata (" + kPrefix + key + "=" + text + ")");
    }
    return value;
}

}  // namespace

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

ModelInfo parse_model_info(const std::map<std::string, std::string>& props, const std::string& source) {
    for (const auto& [key, value] : props) {
        if (!valid_utf8(key) || !valid_utf8(value)) throw ModelError(source + ": engine metadata is not valid UTF-8");
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
    info.skip = get["skip"] == "true";
    info.checkpoint_sha256 = get["checkpoint_sha256"];
    info.model_name = value_or("model_name", "hybridgnet");
    info.model_version = value_or("model_version", "unversioned");
    info.trained = value_or("trained", "true") == "true";
    info.description = value_or("description", "");
    info.second_look = value_or("second_look", "false") == "true";
    info.metadata = props;
    if (info.inputsize < 32 || info.inputsize % 32 != 0 || info.inputsize > 4096 || info.latents < 1 ||
        info.latents > 65536) {
        throw ModelError(source + ": implausible engine metadata inputsize=" + std::to_string(info.inputsize) +
                         " latents=" + std::to_string(info.latents));
    }
    return info;
}

}  // namespace chexmask_rt::detail
