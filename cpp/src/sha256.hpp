// SHA-256 (FIPS 180-4), for the engine's integrity check (model_integrity.cpp): the core links no
// crypto library, and an engine file is hashed once per load. On x86 CPUs with the SHA extensions
// the blocks go through them (about 6x the portable code's speed here).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace chexmask_rt::detail {

class Sha256 {
public:
    /// `cpu_instructions` false: the portable code even where the CPU has SHA instructions (tests).
    explicit Sha256(bool cpu_instructions = true);
    void update(const void* data, std::size_t size);
    /// The digest as 64 lowercase hex digits; the hasher is spent after it.
    std::string hex();

    using Blocks = void (*)(std::uint32_t* state, const std::uint8_t* blocks, std::size_t count);

private:
    Blocks compress_;
    std::array<std::uint32_t, 8> state_;
    std::array<std::uint8_t, 64> pending_{};
    std::size_t pending_size_ = 0;
    std::uint64_t total_ = 0;  // bytes
};

/// SHA-256 of `size` bytes as 64 lowercase hex digits.
std::string sha256_hex(const void* data, std::size_t size);

/// Whether Sha256 uses the CPU's SHA instructions here.
bool sha256_uses_cpu_instructions();

}  // namespace chexmask_rt::detail
