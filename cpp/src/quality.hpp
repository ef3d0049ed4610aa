// The reliability flag (Result::quality) and the check that an answer holds only finite numbers:
// what the core does to every final result before predict() returns it.
#pragma once

#include <chexmask_rt/chexmask_rt.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chexmask_rt::detail {

/// Mean node std in px of the 1024 frame (the letterboxed square resized to 1024), so that one
/// threshold serves every image size: mean_node_std * 1024 / max(height, width).
double node_std_1024(double mean_node_std, int height, int width);

/// The calibrated thresholds of one model (a result is flagged when either score exceeds its own).
struct QualityRule {
    double max_node_std_1024 = 0.0;
    double max_latent_sigma = 0.0;
};

/// The quality rule of one engine, or the "not calibrated" verdict when it has none. Immutable,
/// so one assessor serves every thread.
class QualityAssessor {
public:
    QualityAssessor(std::optional<QualityRule> rule, const std::string& checkpoint_sha256);
    /// `spread_measured` false: the spread rests on one decode (K = 1, no pooled second look), so its
    /// 0 is not a measurement; the verdict then rests on the latent sigma alone and says so.
    Quality assess(double mean_node_std, double mean_latent_sigma, int height, int width,
                   bool spread_measured = true) const;
    Quality assess(const Result& r) const {
        return assess(r.mean_node_std, r.mean_latent_sigma, r.height, r.width, r.spread_measured());
    }
    const std::optional<QualityRule>& rule() const { return rule_; }

private:
    std::optional<QualityRule> rule_;
    Quality uncalibrated_;
};

/// Where an engine's calibration lives by default: `<stem>.quality.json` beside it.
std::string default_quality_file(const std::string& model_path);

/// The assessor from the calibration file `text` (named `source` in messages), keyed by
/// checkpoint_sha256 with `thresholds.node_std_1024` and `thresholds.mean_latent_sigma`.
/// Throws ModelError when the text is not such a file; a file without this checkpoint gives
/// the "not calibrated" assessor.
QualityAssessor parse_quality(std::string_view text, const std::string& source, const std::string& checkpoint_sha256);

/// The assessor of an engine: `quality_file` when given (missing or malformed: ModelError), else
/// the default file beside `model_path` when it exists ("" for an engine from memory: none).
QualityAssessor load_quality(const std::string& model_path, const std::string& quality_file,
                             const std::string& checkpoint_sha256);

/// Throws NonFiniteOutputError for the first result holding NaN or infinity in its landmarks,
/// their std or mu decode, or its latents (which would reach JSON as bare NaN tokens).
/// `engine_name` names the engine in the message.
void check_finite(const std::vector<Result>& results, const std::string& engine_name);

}  // namespace chexmask_rt::detail
