// A small strict JSON reader (RFC 8259) for the core's own files, such as the quality calibration
// sidecar. Any bytes are safe to give it: it never reads past the text, refuses nesting deeper than
// kMaxDepth instead of recursing without end, and reports every defect as a ParseError.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace chexmask_rt::detail::json {

/// Deepest nesting of arrays and objects accepted (the calibration file needs 3).
constexpr int kMaxDepth = 64;

/// Why a text is not JSON, with the byte offset where reading stopped.
class ParseError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One JSON value. Objects keep their members in file order; a repeated key's last value wins on
/// lookup, as Python's json module reads it.
struct Value {
    enum class Type { null, boolean, number, string, array, object };
    Type type = Type::null;
    bool boolean = false;
    double number = 0.0;
    std::string string;               ///< UTF-8, escapes decoded
    std::vector<Value> items;         ///< array elements, or object member values
    std::vector<std::string> keys;    ///< object member names, parallel to `items`

    /// The member `key` of an object (its last occurrence), or nullptr when absent or not an object.
    const Value* find(std::string_view key) const;
};

/// Parses one JSON document (surrounding whitespace allowed). Refuses what Python's json.loads
/// refuses, and also NaN/Infinity, numbers beyond double range, lone surrogates and invalid UTF-8.
Value parse(std::string_view text);

/// "object", "array", ...: for messages.
const char* type_name(Value::Type type);

}  // namespace chexmask_rt::detail::json
