// Latent noise, bit-identical to tests/reference/sampling.py (generator
// "splitmix64-boxmuller-v1"); see that file for the definition.
#include <chexmask_rt/chexmask_rt.hpp>

#include <cmath>
#include <string>

namespace chexmask_rt {
namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr std::uint64_t kMix1 = 0xBF58476D1CE4E5B9ULL;
constexpr std::uint64_t kMix2 = 0x94D049BB133111EBULL;
constexpr double kPi = 3.141592653589793;  // numpy's np.pi

/// The j-th (1-based) SplitMix64 output from state `seed`, as a double in [0, 1).
double uniform(std::uint64_t seed, std::uint64_t j) {
    std::uint64_t z = seed + j * kGolden;
    z = (z ^ (z >> 30)) * kMix1;
    z = (z ^ (z >> 27)) * kMix2;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
}

}  // namespace

std::vector<float> latent_noise(int samples, int latents, std::uint64_t seed) {
    constexpr int kMaxLatents = 1 << 20;
    if (samples < 1 || latents < 1 || samples > kMaxSamples || latents > kMaxLatents) {
        throw InputError("latent_noise: samples must be in 1.." + std::to_string(kMaxSamples) + " and latents in 1.." +
                         std::to_string(kMaxLatents) + ", got " + std::to_string(samples) + ", " + std::to_string(latents));
    }
    const std::size_t n = static_cast<std::size_t>(samples) * static_cast<std::size_t>(latents);
    std::vector<float> eps(n);
    for (std::size_t pair = 0; 2 * pair < n; ++pair) {
        const double u0 = uniform(seed, 2 * pair + 1);
        const double u1 = uniform(seed, 2 * pair + 2);
        const double r = std::sqrt(-2.0 * std::log1p(-u0));
        const double t = 2.0 * kPi * u1;
        eps[2 * pair] = static_cast<float>(r * std::cos(t));
        if (2 * pair + 1 < n) eps[2 * pair + 1] = static_cast<float>(r * std::sin(t));
    }
    return eps;
}

}  // namespace chexmask_rt
