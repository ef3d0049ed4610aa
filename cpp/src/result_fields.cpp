// result_fields.def as data: the table's rows, and a Result's field values by row.
#include "internal.hpp"

#include <string>

namespace chexmask_rt {
const std::vector<FieldInfo>& result_fields() {
    static const std::vector<FieldInfo> fields = {
#define CHEXMASK_RT_FIELD(name, output, kind, unit, need, two_looks, pooled_with, json, csv, doc)                \
    FieldInfo{#name, output, FieldKind::kind, unit, FieldNeed::need, TwoLooks::two_looks, #pooled_with, json != 0, \
              csv, doc},
#include <chexmask_rt/result_fields.def>
#undef CHEXMASK_RT_FIELD
    };
    return fields;
}

const char* kind_name(FieldKind kind) noexcept {
    switch (kind) {
        case FieldKind::Position: return "position";
        case FieldKind::Spread: return "spread";
        case FieldKind::Vector: return "vector";
        case FieldKind::Samples: return "samples";
    }
    return "";
}

const char* two_looks_name(TwoLooks rule) noexcept {
    switch (rule) {
        case TwoLooks::Mean: return "mean";
        case TwoLooks::PooledStd: return "pooled_std";
        case TwoLooks::Concat: return "concat";
    }
    return "";
}

FieldValues field_values(const Result& result, std::size_t index) {
    if (index >= result_fields().size()) {
        throw InputError("field index " + std::to_string(index) + " is past the " +
                         std::to_string(result_fields().size()) + " fields of a result");
    }
    FieldValues out;
    std::size_t i = 0;
    detail::for_each_field([&](const FieldInfo&, auto member, auto) {
        if (i++ != index) return;
        const auto& values = result.*member;
        out.columns = detail::columns_of(values);
        out.rows = values.size();
        out.data = values.empty() ? nullptr : detail::flat(values);
    });
    return out;
}

}  // namespace chexmask_rt
