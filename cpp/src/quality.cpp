// The reliability flag. Thresholds come from benchmarks/calibrate_quality.py (Youden's J on
// in-distribution against corrupted and non-chest images, as in CheXmask-U); the reasons are
// written byte for byte as the Python package wrote them before the core owned the flag, so
// results.csv files of earlier runs resume with the same text.
#include "quality.hpp"

#include "internal.hpp"
#include "json.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace chexmask_rt::detail {
namespace {

constexpr double kFrame = 1024.0;
/// Far above any calibration file (the shipped one is about 30 kB); a larger file is not one.
constexpr std::uintmax_t kMaxFileBytes = 16u << 20;
/// benchmarks/calibrate_quality.py's stand-in for +inf.
constexpr double kUnusedThreshold = 1e308;

/// Python's f"{value:.{digits}f}": correctly rounded, locale-independent, "nan"/"inf" spelled so.
std::string fixed(double value, int digits) {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
    char buf[400];  // the largest double has 309 integer digits
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed, digits);
    return ec == std::errc() ? std::string(buf, end) : std::string("nan");
}

[[noreturn]] void malformed(const std::string& source, const std::string& why) {
    throw ModelError(source + ": malformed quality calibration file (" + why + ")");
}

double threshold(const json::Value& thresholds, const char* key, const std::string& source) {
    const json::Value* v = thresholds.find(key);
    if (v == nullptr) malformed(source, std::string("no thresholds.") + key);
    if (v->type != json::Value::Type::number) {
        malformed(source, std::string("thresholds.") + key + " is " + json::type_name(v->type) + ", not a number");
    }
    // the scores are a std and a sigma: a threshold at or below 0 would flag every result
    if (!(v->number > 0)) malformed(source, std::string("thresholds.") + key + " is not positive");
    // JSON has no infinity: the calibration tool writes a score the rule leaves out as 1e308. Read
    // back as +inf it still never fires, and a reason prints "<= inf", not a 300-digit number.
    return v->number >= kUnusedThreshold ? std::numeric_limits<double>::infinity() : v->number;
}

std::string read_file(const std::string& path) {
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) throw ModelError(path + ": cannot read the quality calibration file (" + ec.message() + ")");
    if (size > kMaxFileBytes) malformed(path, "larger than " + std::to_string(kMaxFileBytes >> 20) + " MiB");
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw ModelError(path + ": cannot read the quality calibration file (" +
                         std::string(errno ? std::strerror(errno) : "cannot open it") + ")");
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) throw ModelError(path + ": cannot read the quality calibration file");
    return text.str();
}

// Where a calibration file is named or belongs, what is there must be one: a link to nothing, a
// device or a folder there is refused, not taken for "not calibrated" (a broken share turned the flag off).
void check_regular(const std::string& path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (std::filesystem::is_regular_file(status)) return;
    const bool found = std::filesystem::exists(status) || std::filesystem::is_symlink(std::filesystem::symlink_status(path, ec));
    throw ModelError(path + (found ? ": quality calibration file is not a regular file (a link to nothing, a device or a folder)"
                                   : ": quality calibration file not found"));
}

}  // namespace

double node_std_1024(double mean_node_std, int height, int width) {
    return mean_node_std * kFrame / std::max(height, width);
}

QualityAssessor::QualityAssessor(std::optional<QualityRule> rule, const std::string& checkpoint_sha256)
    : rule_(rule),
      uncalibrated_{false,
                    "not calibrated for this model (checkpoint sha256 " + shown(checkpoint_sha256, 12) +
                        "): no reliability flag",
                    false} {}

Quality QualityAssessor::assess(double mean_node_std, double mean_latent_sigma, int height, int width,
                                bool spread_measured) const {
    if (!rule_) return uncalibrated_;
    const double node = node_std_1024(mean_node_std, height, width);
    const std::string node_text = fixed(node, 2), node_max = fixed(rule_->max_node_std_1024, 2);
    const std::string sigma_text = fixed(mean_latent_sigma, 4), sigma_max = fixed(rule_->max_latent_sigma, 4);
    std::string over;
    if (node > rule_->max_node_std_1024) over = "mean node std " + node_text + " px (1024 frame) > " + node_max;
    if (mean_latent_sigma > rule_->max_latent_sigma) {
        over += (over.empty() ? "" : "; ") + ("mean latent sigma " + sigma_text + " > " + sigma_max);
    }
    if (!over.empty()) return {true, "uncertainty above the calibrated threshold: " + over, true};
    const std::string node_part = spread_measured
                                      ? "mean node std " + node_text + " px (1024 frame) <= " + node_max
                                      : "mean node std not measured: one sample";
    return {false, "within calibrated thresholds (" + node_part + ", mean latent sigma " + sigma_text + " <= " +
                       sigma_max + ")",
            true};
}

std::string default_quality_file(const std::string& model_path) {
    return std::filesystem::path(model_path).replace_extension(".quality.json").string();
}

QualityAssessor parse_quality(std::string_view text, const std::string& source, const std::string& checkpoint_sha256) {
    json::Value root;
    try {
        root = json::parse(text);
    } catch (const json::ParseError& e) {
        malformed(source, e.what());
    }
    if (root.type != json::Value::Type::object) malformed(source, std::string("the file is ") + json::type_name(root.type) + ", not an object");
    const json::Value* entry = root.find(checkpoint_sha256);
    if (entry == nullptr) return QualityAssessor(std::nullopt, checkpoint_sha256);
    const json::Value* thresholds = entry->find("thresholds");
    if (thresholds == nullptr || thresholds->type != json::Value::Type::object) {
        malformed(source, "the entry of checkpoint " + shown(checkpoint_sha256, 12) + " has no thresholds object");
    }
    const QualityRule rule{threshold(*thresholds, "node_std_1024", source),
                           threshold(*thresholds, "mean_latent_sigma", source)};
    return QualityAssessor(rule, checkpoint_sha256);
}

QualityAssessor load_quality(const std::string& model_path, const std::string& quality_file,
                             const std::string& checkpoint_sha256) {
    std::string path = quality_file;
    // beside the model, else beside the file a link to it names (link_target)
    for (const std::string& model : {model_path, link_target(model_path)}) {
        if (!path.empty() || model.empty()) continue;
        std::error_code ec;
        const std::string beside = default_quality_file(model);
        // absent, or a path the system cannot even look at (a name too long): not there
        if (std::filesystem::symlink_status(beside, ec).type() != std::filesystem::file_type::not_found && !ec) {
            path = beside;
        }
    }
    if (path.empty()) return QualityAssessor(std::nullopt, checkpoint_sha256);
    check_regular(path);
    return parse_quality(read_file(path), path, checkpoint_sha256);
}

void check_finite(const std::vector<Result>& results, const std::string& engine_name) {
    for (std::size_t i = 0; i < results.size(); ++i) {
        // no chexmask-rt engine gives a negative spread or sigma, or landmarks a thousand image sizes
        // away: a flag computed from them said "within calibrated thresholds"
        const double far = 1000.0 * std::max(results[i].height, results[i].width);
        std::string wrong;
        for (std::size_t f = 0; f < result_fields().size() && wrong.empty(); ++f) {  // every engine-output field
            const FieldInfo& field = result_fields()[f];
            const FieldValues v = field_values(results[i], f);
            const double* end = v.data + v.rows * v.columns;
            if (!std::all_of(v.data, end, [](double x) { return std::isfinite(x); })) {
                wrong = "NaN or infinite values";
            } else if ((field.kind == FieldKind::Spread || std::string_view(field.name) == "latent_sigma") &&
                       std::any_of(v.data, end, [](double x) { return x < 0; })) {
                wrong = std::string("a negative ") + field.name;
            } else if ((field.kind == FieldKind::Position || field.kind == FieldKind::Samples) &&
                       std::any_of(v.data, end, [far](double x) { return std::abs(x) > far; })) {
                wrong = std::string(field.name) + " a thousand image sizes away";
            }
        }
        if (!wrong.empty()) {
            throw NonFiniteOutputError(i, "the engine " + engine_name + " returned " + wrong +
                                              " for this image; the engine is faulty", results.size() == 1);
        }
    }
}

}  // namespace chexmask_rt::detail
