#include "json.hpp"

#include "internal.hpp"

#include <charconv>
#include <system_error>

namespace chexmask_rt::detail::json {
namespace {

class Reader {
public:
    explicit Reader(std::string_view text) : text_(text) {}

    Value document() {
        skip_space();
        Value v = value(0);
        skip_space();
        if (pos_ != text_.size()) fail("unexpected data after the JSON value");
        return v;
    }

private:
    std::string_view text_;
    std::size_t pos_ = 0;

    [[noreturn]] void fail(const std::string& what) const {
        throw ParseError(what + " at byte " + std::to_string(pos_));
    }

    bool at_end() const { return pos_ >= text_.size(); }
    char peek() const { return at_end() ? '\0' : text_[pos_]; }

    void skip_space() {
        while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
    }

    void expect(char c) {
        if (peek() != c || at_end()) fail(std::string("expected '") + c + "'");
        ++pos_;
    }

    void literal(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) fail("invalid literal");
        pos_ += word.size();
    }

    Value value(int depth) {
        if (at_end()) fail("unexpected end of the text");
        Value v;
        switch (peek()) {
            case '{': return object(depth + 1);
            case '[': return array(depth + 1);
            case '"':
                v.type = Value::Type::string;
                v.string = string();
                return v;
            case 't':
            case 'f':
                v.type = Value::Type::boolean;
                v.boolean = peek() == 't';
                literal(v.boolean ? "true" : "false");
                return v;
            case 'n':
                literal("null");
                return v;
            default:
                v.type = Value::Type::number;
                v.number = number();
                return v;
        }
    }

    /// An array's or object's body between `open` and `close`: `element` reads each comma-separated item.
    template <typename Element>
    void sequence(int depth, char open, char close, Element&& element) {
        if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
        expect(open);
        skip_space();
        if (peek() == close && !at_end()) {
            ++pos_;
            return;
        }
        for (;;) {
            skip_space();
            element();
            skip_space();
            if (peek() != ',' || at_end()) break;
            ++pos_;
        }
        expect(close);
    }

    Value object(int depth) {
        Value v;
        v.type = Value::Type::object;
        sequence(depth, '{', '}', [&] {
            if (peek() != '"' || at_end()) fail("expected a member name in double quotes");
            v.keys.push_back(string());
            skip_space();
            expect(':');
            skip_space();
            v.items.push_back(value(depth));
        });
        return v;
    }

    Value array(int depth) {
        Value v;
        v.type = Value::Type::array;
        sequence(depth, '[', ']', [&] { v.items.push_back(value(depth)); });
        return v;
    }

    /// Checks the JSON number grammar first: from_chars alone would take "01", "1." or "+1".
    double number() {
        const std::size_t start = pos_;
        auto digits = [&] {
            const std::size_t from = pos_;
            while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
            return pos_ - from;
        };
        if (peek() == '-') ++pos_;
        if (peek() == '0' && !at_end()) ++pos_;
        else if (digits() == 0) fail("invalid value");
        if (peek() == '.' && !at_end()) {
            ++pos_;
            if (digits() == 0) fail("expected digits after the decimal point");
        }
        if ((peek() == 'e' || peek() == 'E') && !at_end()) {
            ++pos_;
            if ((peek() == '+' || peek() == '-') && !at_end()) ++pos_;
            if (digits() == 0) fail("expected digits in the exponent");
        }
        double out = 0.0;
        // from_chars: locale-independent and correctly rounded, as Python's float()
        const auto [end, ec] = std::from_chars(text_.data() + start, text_.data() + pos_, out);
        if (ec == std::errc::result_out_of_range) pos_ = start, fail("number out of the range of a double");
        if (ec != std::errc() || end != text_.data() + pos_) pos_ = start, fail("invalid number");
        return out;
    }

    unsigned hex4() {
        if (text_.size() - pos_ < 4) fail("truncated \\u escape");
        unsigned code = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = text_[pos_++];
            code <<= 4;
            if (c >= '0' && c <= '9') code |= static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') code |= static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') code |= static_cast<unsigned>(c - 'A' + 10);
            else fail("invalid \\u escape");
        }
        return code;
    }

    static void append_utf8(std::string& out, unsigned code) {
        if (code < 0x80) {
            out += static_cast<char>(code);
        } else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (code >> 18));
            out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        }
    }

    /// A \u escape, joining a surrogate pair; a lone surrogate cannot be UTF-8 and is refused.
    unsigned escaped_code_point() {
        const unsigned code = hex4();
        if (code >= 0xDC00 && code <= 0xDFFF) fail("lone low surrogate in \\u escape");
        if (code < 0xD800 || code > 0xDBFF) return code;
        if (text_.substr(pos_, 2) != "\\u") fail("high surrogate without its low half");
        pos_ += 2;
        const unsigned low = hex4();
        if (low < 0xDC00 || low > 0xDFFF) fail("high surrogate without its low half");
        return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }

    std::string string() {
        expect('"');
        std::string out;
        for (;;) {
            if (at_end()) fail("unterminated string");
            const char c = text_[pos_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) --pos_, fail("control character in a string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (at_end()) fail("unterminated escape");
            switch (text_[pos_++]) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': append_utf8(out, escaped_code_point()); break;
                default: --pos_, fail("invalid escape");
            }
        }
    }
};

}  // namespace

const Value* Value::find(std::string_view key) const {
    if (type != Type::object) return nullptr;
    for (std::size_t i = keys.size(); i-- > 0;) {
        if (keys[i] == key) return &items[i];
    }
    return nullptr;
}

Value parse(std::string_view text) {
    if (!valid_utf8(text)) throw ParseError("not valid UTF-8");
    return Reader(text).document();
}

const char* type_name(Value::Type type) {
    switch (type) {
        case Value::Type::null: return "null";
        case Value::Type::boolean: return "a boolean";
        case Value::Type::number: return "a number";
        case Value::Type::string: return "a string";
        case Value::Type::array: return "an array";
        case Value::Type::object: return "an object";
    }
    return "?";
}

}  // namespace chexmask_rt::detail::json
