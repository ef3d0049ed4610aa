// chexmask_rt._core: the native core for Python. numpy arrays are read in place
// (no copy unless their layout needs one) and the GIL is released for the whole
// preprocess + engine run + postprocess, so one Engine serves many Python threads.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chexmask_rt/chexmask_rt.hpp>

#include "internal.hpp"
#include "sha256.hpp"
#include "quality.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

namespace py = pybind11;
using namespace chexmask_rt;

namespace {

// The Python classes from chexmask_rt.errors, kept for the module's lifetime.
PyObject* g_input_error = nullptr;
PyObject* g_model_error = nullptr;
PyObject* g_base_error = nullptr;
PyObject* g_non_finite_error = nullptr;

/// chexmask_rt.errors.NonFiniteOutputError with the image's position in the batch and the reason, so
/// that the Python package can name the image's file instead.
void set_non_finite_error(const NonFiniteOutputError& e) {
    py::object error = py::reinterpret_borrow<py::object>(g_non_finite_error)(e.what());
    error.attr("index") = e.index();
    error.attr("reason") = e.reason();
    PyErr_SetObject(g_non_finite_error, error.ptr());
}

// A message may quote bytes of a damaged file (ONNX Runtime naming a corrupted node): decoded with
// replacement characters, so it stays the typed error instead of becoming a UnicodeDecodeError.
void set_error(PyObject* type, const char* message) {
    PyObject* text = PyUnicode_DecodeUTF8(message, static_cast<Py_ssize_t>(std::strlen(message)), "replace");
    if (text == nullptr) {
        PyErr_Clear();
        PyErr_SetString(type, "(an error whose message cannot be shown)");
        return;
    }
    PyErr_SetObject(type, text);
    Py_DECREF(text);
}

void register_errors() {
    py::module_ errors = py::module_::import("chexmask_rt.errors");
    g_input_error = py::object(errors.attr("InputError")).release().ptr();
    g_model_error = py::object(errors.attr("ModelError")).release().ptr();
    g_base_error = py::object(errors.attr("ChexmaskError")).release().ptr();
    g_non_finite_error = py::object(errors.attr("NonFiniteOutputError")).release().ptr();
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const InputError& e) {
            set_error(g_input_error, e.what());
        } catch (const NonFiniteOutputError& e) {
            set_non_finite_error(e);
        } catch (const ModelError& e) {
            set_error(g_model_error, e.what());
        } catch (const Error& e) {
            set_error(g_base_error, e.what());
        }
    });
}

// Compared by value, not identity: an array that crossed a pickle (multiprocessing, a cache)
// carries an equal dtype that is a different object. Equality also rejects non-native byte order.
// A uint16 image without a bit_depth is 0: the core infers it from the pixels.
int bit_depth_for(const py::dtype& dtype, std::optional<int> bit_depth) {
    if (dtype.equal(py::dtype::of<std::uint8_t>())) return 8;
    if (dtype.equal(py::dtype::of<std::uint16_t>())) {
        if (!bit_depth) return 0;
        const int bits = *bit_depth;
        if (bits < 9 || bits > 16) {
            throw InputError("image: bit_depth must be in 9..16 for uint16 images, got " + std::to_string(bits));
        }
        return bits;
    }
    if (dtype.equal(py::dtype::of<float>())) return 32;
    throw InputError("image: unsupported pixel type " + std::string(py::str(dtype)) +
                     "; the native core takes uint8, uint16 or float32 in [0, 1]");
}

/// A numpy image and the view the core reads; `array` keeps the pixels alive without the GIL.
struct HeldImage {
    py::array array;
    ImageView view;
};

bool rows_of_packed_pixels(const py::array& a) {
    const auto item = static_cast<py::ssize_t>(a.itemsize());
    return a.strides(1) == item && a.strides(0) >= a.shape(1) * item;
}

HeldImage hold(const py::handle& obj, std::optional<int> bit_depth) {
    if (!py::isinstance<py::array>(obj)) {
        throw InputError("image: expected a numpy array, got " + std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    }
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (a.ndim() == 3 && a.shape(2) == 1) a = a[py::make_tuple(py::ellipsis(), 0)];
    if (a.ndim() != 2) {
        throw InputError("image: expected a gray [H, W] array, got " + std::to_string(a.ndim()) + " dimensions");
    }
    const int depth = bit_depth_for(a.dtype(), bit_depth);
    // Negative or gapped column strides: one compact copy, the only case that copies.
    if (!rows_of_packed_pixels(a)) a = py::array::ensure(a, py::array::c_style);
    ImageView v;
    v.data = a.data();
    // the real sides, so that the core's refusal of a side past kMaxSide names them; only a side
    // no int holds is clamped (to one the core refuses all the same)
    constexpr py::ssize_t kIntMax = std::numeric_limits<int>::max();
    v.height = static_cast<int>(std::min(a.shape(0), kIntMax));
    v.width = static_cast<int>(std::min(a.shape(1), kIntMax));
    v.stride = static_cast<std::size_t>(a.strides(0));
    v.bit_depth = depth;
    v.size_bytes = a.shape(0) == 0 ? 0 : static_cast<std::size_t>((a.shape(0) - 1) * a.strides(0) + a.shape(1) * a.itemsize());
    return {a, v};
}

std::uint64_t seed_from(const py::object& seed) {
    if (!py::isinstance<py::int_>(seed) || py::isinstance<py::bool_>(seed)) {
        throw InputError("seed must be an integer in [0, 2**64), got " + std::string(py::repr(seed)));
    }
    const unsigned long long value = PyLong_AsUnsignedLongLong(seed.ptr());
    if (PyErr_Occurred()) {
        PyErr_Clear();
        throw InputError("seed must be an integer in [0, 2**64), got " + std::string(py::repr(seed)));
    }
    return value;
}

py::array_t<double> values_array(const std::vector<double>& values) {
    return py::array_t<double>(static_cast<py::ssize_t>(values.size()), values.data());
}

/// `bit_depth` is None (uint16 depths inferred by the core), one int for every image, or a sequence
/// with one entry (int or None) per image.
std::vector<std::optional<int>> bit_depths_for(const py::object& bit_depth, std::size_t images) {
    if (bit_depth.is_none()) return std::vector<std::optional<int>>(images);
    if (py::isinstance<py::int_>(bit_depth)) return std::vector<std::optional<int>>(images, bit_depth.cast<int>());
    if (!py::isinstance<py::sequence>(bit_depth) || py::isinstance<py::str>(bit_depth)) {
        throw InputError("bit_depth must be None, an int or a sequence of them, got " + std::string(py::repr(bit_depth)));
    }
    auto depths = bit_depth.cast<std::vector<std::optional<int>>>();
    if (depths.size() != images) {
        throw InputError("bit_depth has " + std::to_string(depths.size()) + " entries for " + std::to_string(images) +
                         " images");
    }
    return depths;
}

std::vector<Result> predict_many(const Engine& engine, const py::list& images, int samples, const py::object& seed,
                                 const py::object& bit_depth, std::optional<bool> second_look) {
    const std::vector<std::optional<int>> depths = bit_depths_for(bit_depth, images.size());
    std::vector<HeldImage> held;
    std::vector<ImageView> views;
    for (std::size_t i = 0; i < images.size(); ++i) {
        held.push_back(hold(images[i], depths[i]));
        views.push_back(held.back().view);
    }
    const std::uint64_t s = seed_from(seed);
    py::gil_scoped_release release;
    return engine.predict_batch(views, samples, s, second_look);
}

/// _core.RESULT_FIELDS: result_fields.def as a tuple of dicts, for the Python Result, JSON and CSV.
py::tuple result_fields_tuple() {
    py::list rows;
    for (const FieldInfo& f : result_fields()) {
        py::dict d;
        d["name"] = f.name;
        d["output"] = f.output;
        d["kind"] = kind_name(f.kind);
        d["unit"] = f.unit;
        d["required"] = f.need == FieldNeed::Required;
        d["two_looks"] = two_looks_name(f.two_looks);
        d["pooled_with"] = f.pooled_with;
        d["json"] = f.json;
        d["csv"] = f.csv;
        d["doc"] = f.doc;
        rows.append(d);
    }
    return py::tuple(rows);
}

py::tuple info_state(const ModelInfo& i) {
    py::list organs;
    for (const Organ& o : i.organs) organs.append(py::make_tuple(o.name, o.count));
    return py::make_tuple(i.format_version, i.inputsize, i.latents, i.landmarks, organs, i.skip, i.trained,
                          i.has_samples_output, i.checkpoint_sha256, i.landmark_offsets_sha256, i.model_name,
                          i.model_version, i.description, i.second_look, i.metadata);
}

void bind_info(py::module_& m) {
    py::class_<ModelInfo>(m, "ModelInfo", "What an engine file says about itself, checked against its graph")
        .def_readonly("format_version", &ModelInfo::format_version)
        .def_readonly("inputsize", &ModelInfo::inputsize)
        .def_readonly("latents", &ModelInfo::latents)
        .def_readonly("landmarks", &ModelInfo::landmarks)
        .def_property_readonly("organs",
                               [](const ModelInfo& i) {
                                   py::list out;
                                   for (const Organ& o : i.organs) out.append(py::make_tuple(o.name, o.count));
                                   return py::tuple(out);
                               })
        .def_readonly("skip", &ModelInfo::skip)
        .def_readonly("trained", &ModelInfo::trained)
        .def_readonly("has_samples_output", &ModelInfo::has_samples_output)
        .def_readonly("checkpoint_sha256", &ModelInfo::checkpoint_sha256)
        .def_readonly("landmark_offsets_sha256", &ModelInfo::landmark_offsets_sha256)
        .def_readonly("model_name", &ModelInfo::model_name)
        .def_readonly("model_version", &ModelInfo::model_version)
        .def_readonly("description", &ModelInfo::description)
        .def_readonly("second_look", &ModelInfo::second_look)
        .def_readonly("metadata", &ModelInfo::metadata)
        .def_property_readonly("id", &ModelInfo::id)
        // Equal field by field (a worker's copy equals its parent's), hashed by what names the model.
        .def("__eq__", [](const ModelInfo& a, const ModelInfo& b) { return info_state(a).equal(info_state(b)); },
             py::is_operator())
        .def("__hash__", [](const ModelInfo& i) {
            return py::hash(py::make_tuple(i.model_name, i.model_version, i.checkpoint_sha256, i.inputsize, i.latents));
        })
        .def("__repr__", [](const ModelInfo& i) {
            return "ModelInfo(id='" + i.id() + "', inputsize=" + std::to_string(i.inputsize) +
                   ", latents=" + std::to_string(i.latents) + ", landmarks=" + std::to_string(i.landmarks) +
                   ", trained=" + (i.trained ? "True" : "False") + ", second_look=" +
                   (i.second_look ? "True" : "False") + ", checkpoint_sha256='" + i.checkpoint_sha256.substr(0, 12) +
                   "...')";
        })
        // Picklable (and copyable) field by field, so that it can go to and from worker processes.
        .def(py::pickle([](const ModelInfo& i) { return info_state(i); },
            [](const py::tuple& t) {
                if (t.size() != 15) throw std::runtime_error("ModelInfo: not a pickled ModelInfo of this version");
                ModelInfo i;
                i.format_version = t[0].cast<int>();
                i.inputsize = t[1].cast<int>();
                i.latents = t[2].cast<int>();
                i.landmarks = t[3].cast<int>();
                for (const auto& o : t[4].cast<py::list>()) {
                    const auto pair = o.cast<py::tuple>();
                    i.organs.push_back(Organ{pair[0].cast<std::string>(), pair[1].cast<int>()});
                }
                i.skip = t[5].cast<bool>();
                i.trained = t[6].cast<bool>();
                i.has_samples_output = t[7].cast<bool>();
                i.checkpoint_sha256 = t[8].cast<std::string>();
                i.landmark_offsets_sha256 = t[9].cast<std::string>();
                i.model_name = t[10].cast<std::string>();
                i.model_version = t[11].cast<std::string>();
                i.description = t[12].cast<std::string>();
                i.second_look = t[13].cast<bool>();
                i.metadata = t[14].cast<std::map<std::string, std::string>>();
                return i;
            }));
}

void bind_second_look(py::module_& m) {
    py::class_<SecondLook>(m, "SecondLook", "How a second look made an answer (chexmask_rt.SecondLook is its picklable copy)")
        .def_readonly("look", &SecondLook::look)
        .def_readonly("first_fill", &SecondLook::first_fill)
        .def_readonly("crop_left", &SecondLook::crop_left)
        .def_readonly("crop_top", &SecondLook::crop_top)
        .def_readonly("crop_side", &SecondLook::crop_side);
}

/// A field's values as numpy: (nodes, 2) points, (latents,) vectors, (K, nodes, 2) samples or None.
py::object field_array(const Result& r, std::size_t index) {
    const FieldValues v = field_values(r, index);
    const FieldInfo& info = result_fields()[index];
    if (info.need == FieldNeed::Optional && (v.rows == 0 || r.landmarks.empty())) return py::none();  // no such output
    py::array_t<double> out(v.columns == 1 ? std::vector<py::ssize_t>{static_cast<py::ssize_t>(v.rows)}
                                           : std::vector<py::ssize_t>{static_cast<py::ssize_t>(v.rows), 2});
    std::copy_n(v.data, v.rows * v.columns, out.mutable_data());
    if (info.kind != FieldKind::Samples) return out;
    const auto nodes = static_cast<py::ssize_t>(r.landmarks.size());
    return out.reshape({static_cast<py::ssize_t>(v.rows) / nodes, nodes, py::ssize_t{2}});
}

void bind_result(py::module_& m) {
    py::class_<Result> result(m, "Result", "One image's landmarks and uncertainty, in original pixels");
    for (std::size_t i = 0; i < result_fields().size(); ++i) {  // one property per row of result_fields.def
        result.def_property_readonly(
            result_fields()[i].name, [i](const Result& r) { return field_array(r, i); }, result_fields()[i].doc);
    }
    result.def_property_readonly("node_uncertainty", [](const Result& r) { return values_array(r.node_uncertainty); })
        .def_readonly("mean_node_std", &Result::mean_node_std)
        .def_readonly("mean_latent_sigma", &Result::mean_latent_sigma)
        .def_readonly("height", &Result::height)
        .def_readonly("width", &Result::width)
        .def_readonly("samples", &Result::samples)
        .def_readonly("seed", &Result::seed)
        .def_readonly("bit_depth", &Result::bit_depth)
        .def_readonly("second_look", &Result::second_look)
        .def_readonly("quality", &Result::quality)
        .def_property_readonly("spread_measured", &Result::spread_measured,
                               "False for one decode (samples 1, no pooled look): the std is 0, not measured");
}

void bind_quality(py::module_& m) {
    py::class_<Quality>(m, "Quality", "The reliability flag of one result (chexmask_rt.quality)")
        .def_readonly("flag", &Quality::flag)
        .def_readonly("reason", &Quality::reason)
        .def_readonly("calibrated", &Quality::calibrated)
        .def("to_dict", [](const Quality& q) {
            py::dict d;
            d["flag"] = q.flag;
            d["reason"] = q.reason;
            d["calibrated"] = q.calibrated;
            return d;
        })
        .def("__repr__", [](const Quality& q) {
            return "Quality(flag=" + std::string(q.flag ? "True" : "False") + ", reason=" +
                   std::string(py::repr(py::str(q.reason))) + ", calibrated=" + (q.calibrated ? "True" : "False") + ")";
        });
    // The core's assessor for results made outside the core (the Python reference path).
    py::class_<detail::QualityAssessor>(m, "QualityAssessor", "The reliability flag's thresholds of one engine")
        .def(py::init(&detail::load_quality), py::arg("model_path"), py::arg("quality_file"), py::arg("checkpoint_sha256"))
        .def("assess", py::overload_cast<double, double, int, int, bool>(&detail::QualityAssessor::assess, py::const_),
             py::arg("mean_node_std"), py::arg("mean_latent_sigma"), py::arg("height"), py::arg("width"),
             py::arg("spread_measured") = true);
    m.def("node_std_1024", &detail::node_std_1024, py::arg("mean_node_std"), py::arg("height"), py::arg("width"),
          "Mean node std in px of the 1024 frame: mean_node_std * 1024 / max(height, width)");
    m.def("default_quality_file", &detail::default_quality_file, py::arg("model_path"),
          "Where an engine's calibration is read from when none is named: <stem>.quality.json beside it");
    m.def("link_target", &detail::link_target, py::arg("path"),
          "The file the symbolic link path names, '' for anything else: side files are looked for beside it "
          "where none is beside the link");
    m.def("model_id_problem", &detail::model_id_problem, py::arg("model_name"), py::arg("model_version"),
          py::arg("dicom") = false, "What is wrong with a model's name and version as engines carry them, '' when nothing; dicom: "
          "also a version over 64 characters");
}

void bind_engine(py::module_& m) {
    py::class_<Engine>(m, "Engine", "A loaded engine; thread-safe, the GIL is released while it works")
        .def(py::init([](const std::string& path, const std::string& library, int threads, bool layout,
                         bool memory_pattern, const std::string& device, const std::string& tensorrt_cache_dir,
                         const std::string& quality_file, int images_per_call, const std::string& expected_sha256) {
                 EngineOptions options;
                 options.onnxruntime_library = library;
                 options.intra_op_threads = threads;
                 options.layout_optimizations = layout;
                 options.memory_pattern = memory_pattern;
                 options.device = device;
                 options.tensorrt_cache_dir = tensorrt_cache_dir;
                 options.quality_file = quality_file;
                 options.images_per_call = images_per_call;
                 options.expected_sha256 = expected_sha256;
                 py::gil_scoped_release release;
                 return std::make_unique<Engine>(path, options);
             }),
             py::arg("model_path"), py::arg("onnxruntime_library") = "", py::arg("intra_op_threads") = 0,
             py::arg("layout_optimizations") = EngineOptions{}.layout_optimizations,
             py::arg("memory_pattern") = EngineOptions{}.memory_pattern, py::arg("device") = EngineOptions{}.device,
             py::arg("tensorrt_cache_dir") = "", py::arg("quality_file") = "",
             py::arg("images_per_call") = EngineOptions{}.images_per_call, py::arg("expected_sha256") = "")
        .def_property_readonly("info", &Engine::info)
        .def_property_readonly("providers", &Engine::providers)
        .def(
            "predict",
            [](const Engine& e, const py::object& image, int samples, const py::object& seed,
               std::optional<int> bit_depth, std::optional<bool> second_look) {
                py::list one;
                one.append(image);
                return predict_many(e, one, samples, seed, py::cast(bit_depth), second_look).front();
            },
            py::arg("image"), py::arg("samples"), py::arg("seed") = 0, py::arg("bit_depth") = py::none(),
            py::arg("second_look") = py::none())
        .def("predict_batch", &predict_many, py::arg("images"), py::arg("samples"), py::arg("seed") = 0,
             py::arg("bit_depth") = py::none(), py::arg("second_look") = py::none());
}

void check_engine_size(int size) {
    if (size < 32 || size > 4096) throw InputError("size must be in 32..4096");
}

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

DoubleArray as_doubles(const py::object& values, bool points) {
    auto in = DoubleArray::ensure(values);
    if (!in || (points && (in.ndim() < 1 || in.shape(in.ndim() - 1) != 2))) {
        throw InputError(std::string(points ? "points: expected a numeric array of shape (..., 2), got "
                                            : "lengths: expected a numeric array, got ") +
                         std::string(py::repr(values)));
    }
    return in;
}

// Each element of `in` (a Point or a double) mapped into an array of the same shape.
template <class Element, class Map>
py::array_t<double> map_elements(const DoubleArray& in, Map map) {
    py::array_t<double> out(std::vector<py::ssize_t>(in.shape(), in.shape() + in.ndim()));
    const auto* src = reinterpret_cast<const Element*>(in.data());
    auto* dst = reinterpret_cast<Element*>(out.mutable_data());
    const py::ssize_t count = in.size() / static_cast<py::ssize_t>(sizeof(Element) / sizeof(double));
    for (py::ssize_t i = 0; i < count; ++i) dst[i] = map(src[i]);
    return out;
}

void bind_letterbox(py::module_& m) {
    using detail::Letterbox;
    py::class_<Letterbox>(m, "Letterbox",
                          "Geometry of the centred zero-pad of a height x width image to a square of side max(h, w)")
        .def(py::init([](int height, int width) {
                 if (height < 1 || width < 1 || height > kMaxSide || width > kMaxSide) {
                     throw InputError("Letterbox: height and width must be in 1.." + std::to_string(kMaxSide) +
                                      ", got " + std::to_string(height) + " x " + std::to_string(width));
                 }
                 return Letterbox{height, width};
             }),
             py::arg("height"), py::arg("width"))
        .def_readonly("height", &Letterbox::height)
        .def_readonly("width", &Letterbox::width)
        .def_property_readonly("side", &Letterbox::side)
        .def_property_readonly("pad_left", &Letterbox::pad_left)
        .def_property_readonly("pad_top", &Letterbox::pad_top)
        .def(
            "to_original",
            [](const Letterbox& f, const py::object& p) {
                return map_elements<Point>(as_doubles(p, true), [&](Point q) { return f.to_original(q); });
            },
            py::arg("points_norm"), "Normalised (x, y) in [0, 1] of the square, shape (..., 2) -> original pixels")
        .def(
            "scale_to_original",
            [](const Letterbox& f, const py::object& v) {
                return map_elements<double>(as_doubles(v, false), [&](double q) { return f.scale_to_original(q); });
            },
            py::arg("lengths_norm"), "Normalised lengths (e.g. stds), any shape -> original pixels")
        .def(
            "to_normalised",
            [](const Letterbox& f, const py::object& p) {
                return map_elements<Point>(as_doubles(p, true), [&](Point q) { return f.to_normalised(q); });
            },
            py::arg("points_px"), "Original pixels, shape (..., 2) -> normalised (x, y) of the square")
        .def("__repr__", [](const Letterbox& f) {
            return "Letterbox(height=" + std::to_string(f.height) + ", width=" + std::to_string(f.width) + ")";
        });
}

// The letterboxed image in its own dtype and levels (no scaling): training and the published flow's
// benchmark render through this, so their square is the runtime's to the pixel.
py::tuple letterbox(const py::object& image, int size) {
    check_engine_size(size);
    HeldImage held = hold(image, std::nullopt);
    std::vector<float> levels(static_cast<std::size_t>(size) * size);
    detail::Letterbox frame;
    {
        py::gil_scoped_release release;
        frame = detail::letterbox_into(detail::resolve_pixels(held.view), size, 1.0f, levels.data());
    }
    py::array out(held.array.dtype(), std::vector<py::ssize_t>{size, size});
    // exact: 8-bit levels are integers, 16-bit ones rounded and clamped by the resize
    if (held.view.bit_depth == 8) {
        std::copy(levels.begin(), levels.end(), static_cast<std::uint8_t*>(out.mutable_data()));
    } else if (held.view.bit_depth == 32) {
        std::copy(levels.begin(), levels.end(), static_cast<float*>(out.mutable_data()));
    } else {
        std::copy(levels.begin(), levels.end(), static_cast<std::uint16_t*>(out.mutable_data()));
    }
    return py::make_tuple(out, frame);
}

// The depth the core reads a gray image at: 8, 9..16 or 32 (float), inferred for uint16 without a
// bit_depth exactly as predict does; for tools that must scale pixels the runtime's way.
int resolved_bit_depth(const py::object& image, std::optional<int> bit_depth) {
    HeldImage held = hold(image, bit_depth);
    py::gil_scoped_release release;
    return detail::resolve_pixels(held.view).depth;
}

py::tuple preprocess(const py::object& image, int size, std::optional<int> bit_depth) {
    check_engine_size(size);
    HeldImage held = hold(image, bit_depth);
    py::array_t<float> out({size, size});
    float* dst = out.mutable_data();
    detail::Letterbox frame;
    {
        py::gil_scoped_release release;
        frame = detail::preprocess_into(detail::resolve_pixels(held.view), size, dst);
    }
    return py::make_tuple(out, frame.side(), frame.pad_left(), frame.pad_top());
}

py::array_t<float> latent_noise_array(int samples, int latents, const py::object& seed) {
    std::vector<float> eps = latent_noise(samples, latents, seed_from(seed));
    py::array_t<float> out({samples, latents});
    std::copy(eps.begin(), eps.end(), out.mutable_data());
    return out;
}

py::array_t<std::uint8_t> polygon_mask_array(const py::array_t<double, py::array::c_style | py::array::forcecast>& points,
                                            std::int64_t height, std::int64_t width) {
    if (points.ndim() != 2 || points.shape(1) != 2) {
        throw InputError("polygon_mask: expected (N, 2) points, got " + std::to_string(points.ndim()) + " dimensions" +
                         (points.ndim() == 2 ? " of width " + std::to_string(points.shape(1)) : std::string()));
    }
    detail::polygon_mask_bytes(height, width);  // refuses a bad size before allocating or narrowing
    // numpy.zeros: pages come zeroed from the OS and only the organ's rows are ever touched
    // (a filled 2000 x 2000 mask costs about 0.7 ms of page faults more when every page is written).
    auto out = py::array_t<std::uint8_t>::ensure(py::module_::import("numpy").attr("zeros")(
        py::make_tuple(height, width), py::dtype::of<std::uint8_t>()));
    std::uint8_t* dst = out.mutable_data();
    const auto* polygon = reinterpret_cast<const Point*>(points.data());
    const auto count = static_cast<std::size_t>(points.shape(0));
    {
        py::gil_scoped_release release;  // `points` and `out` are held by this frame meanwhile
        detail::fill_polygon(polygon, count, static_cast<int>(height), static_cast<int>(width), dst, true);
    }
    return out;
}

/// Bytes handed in (bytes, bytearray, a uint8 array: a JPEG frame, a file to hash): contiguous,
/// held by the caller.
struct HeldBytes {
    const std::uint8_t* data;
    std::size_t size;
};
HeldBytes held_bytes(const py::buffer& data, const char* function) {
    const py::buffer_info info = data.request();
    if (info.itemsize != 1 || info.ndim != 1 || info.strides[0] != 1)
        throw InputError(std::string(function) + ": expected contiguous bytes");
    return {static_cast<const std::uint8_t*>(info.ptr), static_cast<std::size_t>(info.size)};
}

py::tuple lossless_jpeg_array(const py::buffer& data, std::int64_t max_pixels) {
    const HeldBytes frame = held_bytes(data, "decode_lossless_jpeg");
    detail::LosslessImage image;
    {
        py::gil_scoped_release release;  // `data` is held by the caller meanwhile
        image = detail::decode_lossless_jpeg(frame.data, frame.size, max_pixels);
    }
    // the array owns the decoded samples (no copy: 128 MB at the 64 MP limit)
    auto* samples = new std::vector<std::uint16_t>(std::move(image.samples));
    py::capsule owner(samples, [](void* p) { delete static_cast<std::vector<std::uint16_t>*>(p); });
    py::array_t<std::uint16_t> out({image.height, image.width}, samples->data(), owner);
    return py::make_tuple(out, image.precision);
}

std::string sha256_of(const py::buffer& data) {
    const HeldBytes bytes = held_bytes(data, "sha256_hex");
    py::gil_scoped_release release;  // `data` is held by the caller meanwhile
    return detail::sha256_hex(bytes.data, bytes.size);
}

int dct_jpeg_check(const py::buffer& data) {
    const HeldBytes frame = held_bytes(data, "check_dct_jpeg");
    py::gil_scoped_release release;  // `data` is held by the caller meanwhile
    return detail::check_dct_jpeg(frame.data, frame.size);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "chexmask-rt native core (C++ preprocessing, ONNX Runtime engine call, postprocessing)";
    m.attr("__version__") = chexmask_rt::version();
    m.attr("INTENDED_USE") = chexmask_rt::kIntendedUse;
    register_errors();
    bind_info(m);
    bind_second_look(m);
    bind_quality(m);
    bind_result(m);
    bind_engine(m);
    bind_letterbox(m);
    m.def("latent_noise", &latent_noise_array, py::arg("samples"), py::arg("latents"), py::arg("seed") = 0,
          "eps float32 [samples, latents], generator splitmix64-boxmuller-v1 (tests/reference/sampling.py)");
    m.def("preprocess", &preprocess, py::arg("image"), py::arg("size"), py::arg("bit_depth") = py::none(),
          "(float32 [size, size] engine input, side, pad_left, pad_top): the letterboxed image / full scale");
    m.def("bit_depth", &resolved_bit_depth, py::arg("image"), py::arg("bit_depth") = py::none(),
          "The depth the core reads a gray image at: 8, 9..16 or 32 (float); uint16 without bit_depth: inferred, "
          "as predict does (content <= 255: 8)");
    m.def("letterbox", &letterbox, py::arg("image"), py::arg("size"),
          "(the gray image letterboxed to [size, size] in its own dtype and levels, its Letterbox)");
    m.def("parse_model_info", &parse_model_info, py::arg("metadata"), py::arg("source"),
          "Validates engine metadata alone (no session, no graph): a ModelInfo, or ModelError naming source");
    m.attr("RESULT_FIELDS") = result_fields_tuple();
    m.def("polygon_mask", &polygon_mask_array, py::arg("points"), py::arg("height"), py::arg("width"),
          "uint8 [height, width] 0/255 filled polygon of float64 (N, 2) (x, y) points, equal to cv2.fillPoly "
          "of them clamped to +-4 * max(height, width) and truncated to int32 (chexmask_rt.rle.polygon_mask)");
    m.def("decode_lossless_jpeg", &lossless_jpeg_array, py::arg("data"), py::arg("max_pixels"),
          "(uint16 [rows, columns] samples, sample precision) of a one-component lossless JPEG (SOF3), as DICOM's "
          "JPEG Lossless syntaxes hold it; damaged data is an InputError, never filled in");
    m.def("check_dct_jpeg", &dct_jpeg_check, py::arg("data"),
          "The sample precision of a sequential Huffman DCT JPEG (SOF0/SOF1, 8 or 12 bits), checked without "
          "decoding it: damaged entropy-coded data, which libjpeg-turbo fills in with a warning, is an InputError");
    m.def("sha256_hex", &sha256_of, py::arg("data"),
          "SHA-256 of the bytes as 64 lowercase hex digits, as the core checks engine files with it");
    m.attr("INTEGRITY_KEY") = detail::kIntegrityKey;
    m.attr("SEAL_ENTRIES") = py::make_tuple(py::make_tuple(detail::kIntegrityKey, std::string(64, '0')),
                                            py::make_tuple(detail::kSealedKey, "sha256"));
    m.def("seal_engine", [](const py::bytes& data) { return py::bytes(detail::sealed_engine(std::string(data))); },
          py::arg("data"),
          "The engine's bytes with its INTEGRITY_KEY entry, written as 64 '0's, set to the SHA-256 of them: "
          "what the core checks each engine against when it opens it");
    m.def("onnxruntime_library", &detail::loaded_onnxruntime_library,
          "Path of the ONNX Runtime library this process loaded ('' before the first Engine)");
    m.def("usable_cores", [] { return detail::cpu_share().usable; },
          "Physical cores this process may use (CPU affinity, at most the cgroup's CPU quota): an engine's "
          "threads when none are given; 0 where Linux does not say");
    m.attr("MIN_SIDE") = kMinSide;
    m.attr("MAX_SIDE") = kMaxSide;
    m.attr("MAX_SAMPLES") = kMaxSamples;
    m.attr("MAX_THREADS") = kMaxIntraOpThreads;
    m.attr("MAX_ENGINE_INPUTSIZE") = detail::kMaxEngineInputsize;
    m.attr("MAX_ENGINE_LATENTS") = detail::kMaxEngineLatents;
    m.attr("SECOND_LOOK_FILL") = kSecondLookFill;
    m.attr("CROP_ONLY_BELOW") = kCropOnlyBelow;
}
