// An engine file checks itself before ONNX Runtime parses it. A flash page or a download that goes
// wrong leaves a file that still loads: zeroing 4 KB at a random place in the shipped engine moved
// its landmarks by a pixel or more in 8 of 40 tries, silently. So `chexmask-rt export` records
// in the metadata the SHA-256 of the file as written with that value as 64 '0's; an integrator
// may also pin the whole file's SHA-256 (EngineOptions::expected_sha256), as `sha256sum` prints it.
#include "internal.hpp"
#include "sha256.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

namespace chexmask_rt::detail {
namespace {

constexpr std::size_t kHexDigits = 64;

// The metadata entry as protobuf writes it: field 1 (the key), then field 2 (the value, 64 bytes).
const std::string kRecordedEntry =
    std::string{'\x0a', static_cast<char>(sizeof kIntegrityKey - 1)} + kIntegrityKey + "\x12\x40";
const std::string kUnset(kHexDigits, '0');

/// SHA-256 of `file` with the 64 bytes at `value_at` read as '0's.
std::string sealed_hash(std::string_view file, std::size_t value_at) {
    Sha256 hasher;
    hasher.update(file.data(), value_at);
    hasher.update(kUnset.data(), kHexDigits);
    hasher.update(file.data() + value_at + kHexDigits, file.size() - value_at - kHexDigits);
    return hasher.hex();
}

bool is_lower_hex(std::string_view text) {
    return text.size() == kHexDigits &&
           text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

/// The file's bytes, mapped for the duration of the check.
class MappedFile {
public:
    explicit MappedFile(const std::string& path) {
        const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (fd < 0 || fstat(fd, &st) != 0) {
            const int error = errno;
            if (fd >= 0) close(fd);
            throw ModelError(path + ": cannot read the model file (" + std::strerror(error) + ")");
        }
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ > 0) data_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        const int error = errno;
        close(fd);
        if (data_ == MAP_FAILED) {
            throw ModelError(path + ": cannot read the model file (" + std::strerror(error) + ")");
        }
    }
    ~MappedFile() {
        if (data_ != nullptr && data_ != MAP_FAILED) munmap(data_, size_);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    std::string_view bytes() const { return {static_cast<const char*>(data_), data_ == nullptr ? 0 : size_}; }

private:
    void* data_ = nullptr;
    std::size_t size_ = 0;
};

/// ModelError unless `file` hashes to `expected_sha256` (64 hex digits, either case); `whose` says
/// where the expected value came from.
void check_whole_file(std::string_view file, const std::string& name, const std::string& expected_sha256,
                      const std::string& whose) {
    std::string expected = expected_sha256;
    for (char& c : expected) c = static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    const std::string actual = sha256_hex(file.data(), file.size());
    if (actual != expected) {
        throw ModelError(name + ": the file's SHA-256 is " + actual + ", not the " + whose + " " + expected +
                         ": a damaged or different model file");
    }
}

/// The SHA-256 that `<path>.sha256` lists (sha256sum's form: the digest first), "" without that file.
/// An engine exported before the seal (the shipped one) travels with such a list.
std::string listed_sha256(const std::string& path) {
    const std::string list = path + ".sha256";
    // O_NONBLOCK: opening a FIFO there waited for a writer forever (every load of the engine hung)
    const int fd = open(list.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return "";
    struct stat info {};
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        close(fd);
        throw ModelError(list + ": not a regular file (a FIFO, a device or a folder) where the engine's SHA-256 "
                         "list belongs; fix or delete it");
    }
    char head[128];
    const ssize_t got = read(fd, head, sizeof head);
    close(fd);
    const std::string text(head, got > 0 ? static_cast<std::size_t>(got) : 0);
    const std::string digest = text.substr(0, text.find_first_of(" \t\r\n"));
    if (!is_sha256_text(digest)) {
        throw ModelError(list + ": not a SHA-256 list of the engine (sha256sum's form: 64 hex digits first); "
                         "fix or delete it");
    }
    return digest;
}

bool check_bytes(std::string_view file, const std::string& name, const std::string& expected_sha256) {
    if (!expected_sha256.empty()) {
        check_whole_file(file, name, expected_sha256, "expected");
        return true;  // the very file the caller expects, whatever it records
    }
    const std::size_t at = file.find(kRecordedEntry);
    if (at == std::string_view::npos) return false;  // exported before the seal, or by another tool
    const std::size_t value_at = at + kRecordedEntry.size();
    const std::string_view recorded = file.substr(value_at, kHexDigits);
    if (!is_lower_hex(recorded) || file.find(kRecordedEntry, value_at) != std::string_view::npos) {
        throw ModelError(name + ": damaged: its recorded integrity_sha256 is not one SHA-256 of 64 hex digits");
    }
    const std::string actual = sealed_hash(file, value_at);
    if (actual != recorded) {
        throw ModelError(name + ": the file changed after export (SHA-256 " + actual.substr(0, 12) +
                         "... where the export recorded " + std::string(recorded.substr(0, 12)) +
                         "...): damaged in storage or transfer, or edited; export it again");
    }
    return true;
}

}  // namespace

bool is_sha256_text(const std::string& text) {
    return text.size() == kHexDigits && text.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

std::string link_target(const std::string& path) {
    std::error_code ec;
    if (path.empty() || !std::filesystem::is_symlink(path, ec) || ec) return "";
    const std::filesystem::path target = std::filesystem::canonical(path, ec);
    return ec ? "" : target.string();
}

bool check_integrity(const ModelSource& model, const std::string& expected_sha256) {
    if (model.data != nullptr) {
        return check_bytes({static_cast<const char*>(model.data), model.size}, model.name, expected_sha256);
    }
    const MappedFile file(model.name);
    if (check_bytes(file.bytes(), model.name, expected_sha256)) return true;
    std::string listed_for = model.name;
    std::string listed = listed_sha256(listed_for);
    if (listed.empty() && !(listed_for = link_target(model.name)).empty()) listed = listed_sha256(listed_for);
    if (listed.empty()) return false;  // nothing to check against
    check_whole_file(file.bytes(), model.name, listed, "SHA-256 listed in " + listed_for + ".sha256:");
    return true;
}

std::string sealed_engine(std::string bytes) {
    const std::string unset_entry = kRecordedEntry + kUnset;
    const std::size_t at = bytes.find(unset_entry);
    if (at == std::string::npos || bytes.find(unset_entry, at + 1) != std::string::npos) {
        throw InputError(std::string("seal: the engine must hold one ") + kIntegrityKey + " entry of 64 '0's");
    }
    const std::size_t value_at = at + kRecordedEntry.size();
    bytes.replace(value_at, kHexDigits, sealed_hash(bytes, value_at));
    return bytes;
}

}  // namespace chexmask_rt::detail
