// result_fields.def as data: the table's rows, and a Result's field values by row.
#include "internal.hpp"

#include <string>

namespace chexmask_rt {
namespace {

static_assert(sizeof(Point) == 2 * sizeof(double), "Point must be two packed doubles");

const double* flat(const std::vector<Point>& points) { return reinterpret_cast<const double*>(points.data()); }
const double* flat(const std::vector<double>& values) { return values.data(); }
constexpr std::size_t columns_of(const std::vector<Point>*) { return 2; }
constexpr std::size_t columns_of(const std::vector<double>*) { return 1; }

}  // namespace

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
        out.columns = columns_of(&values);
        out.rows = values.size();
        out.data = values.empty() ? nullptr : flat(values);
    });
    return out;
}

}  // namespace chexmask_rt
