// SHA-256 (FIPS 180-4), for the engine's integrity check (model_integrity.cpp): the core links no
// crypto library, and an engine file is hashed once per load.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace chexmask_rt::detail {

class Sha256 {
public:
    Sha256();
    void update(const void* data, std::size_t size);
    /// The digest as 64 lowercase hex digits; the hasher is spent after it.
    std::string hex();

private:
    void compress(const std::uint8_t* block);
    std::array<std::uint32_t, 8> state_;
    std::array<std::uint8_t, 64> pending_{};
    std::size_t pending_size_ = 0;
    std::uint64_t total_ = 0;  // bytes
};

/// SHA-256 of `size` bytes as 64 lowercase hex digits.
std::string sha256_hex(const void* data, std::size_t size);

}  // namespace chexmask_rt::detail
