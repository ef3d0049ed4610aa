// ONNX Runtime backend through its C++ API. The library is dlopen'ed at run time
// (ORT_API_MANUAL_INIT), so this code builds against the Debian headers and runs
// with any libonnxruntime of the same or a newer API version, e.g. the one inside
// the onnxruntime Python wheel.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>

#include "internal.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <utility>
#include <array>
#include <cstdlib>
#include <mutex>
#include <sstream>

namespace chexmask_rt::detail {
namespace {

constexpr std::array<const char*, 2> kInputs = {"image", "eps"};
constexpr std::array<const char*, 6> kOutputs = {"landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu",
                                                 "latent_sigma", "landmarks_samples"};
constexpr std::size_t kRequiredOutputs = 5;  // the last, the raw decodes, only engines exported with --samples-output

/// The process-wide ONNX Runtime: one library, one Ort::Env, loaded once and never unloaded
/// (sessions may outlive any single Engine, and unloading ORT at exit is known to crash).
struct OrtRuntime {
    std::string library;
    Ort::Env* env = nullptr;
};

std::mutex g_runtime_mutex;
OrtRuntime g_runtime;

std::string default_library() {
    if (const char* env = std::getenv("CHEXMASK_RT_ONNXRUNTIME_LIBRARY"); env != nullptr && *env != '\0') return env;
    return "libonnxruntime.so.1";
}

const OrtApi* load_api(const std::string& library) {
    void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* why = dlerror();
        throw ModelError("cannot load the ONNX Runtime library '" + library + "' (" + (why ? why : "unknown error") +
                         "); install the onnxruntime Python package or pass its path "
                         "(EngineOptions::onnxruntime_library / $CHEXMASK_RT_ONNXRUNTIME_LIBRARY)");
    }
    using GetApiBase = const OrtApiBase* (*)();
    auto get_api_base = reinterpret_cast<GetApiBase>(dlsym(handle, "OrtGetApiBase"));
    if (get_api_base == nullptr) throw ModelError("'" + library + "' is not an ONNX Runtime library (no OrtGetApiBase)");
    const OrtApiBase* base = get_api_base();
    const OrtApi* api = base->GetApi(ORT_API_VERSION);
    if (api == nullptr) {
        throw ModelError("ONNX Runtime " + std::string(base->GetVersionString()) + " at '" + library +
                         "' is older than the API version " + std::to_string(ORT_API_VERSION) +
                         " this build needs (onnxruntime >= 1." + std::to_string(ORT_API_VERSION) + ")");
    }
    return api;
}

Ort::Env& runtime_env(const std::string& requested) {
    std::lock_guard<std::mutex> lock(g_runtime_mutex);
    const std::string library = requested.empty() ? default_library() : requested;
    if (g_runtime.env != nullptr) {
        if (!requested.empty() && requested != g_runtime.library) {
            throw ModelError("ONNX Runtime is already loaded from '" + g_runtime.library +
                             "' in this process; cannot switch to '" + requested + "'");
        }
        return *g_runtime.env;
    }
    Ort::InitApi(load_api(library));
    g_runtime.env = new Ort::Env(ORT_LOGGING_LEVEL_ERROR, "chexmask_rt");
    g_runtime.library = library;
    return *g_runtime.env;
}

std::string first_line(const char* text) {
    std::string s = text ? text : "";
    const auto nl = s.find('\n');
    return nl == std::string::npos ? s : s.substr(0, nl);
}

std::size_t element_count(const std::vector<std::int64_t>& shape) {
    std::size_t n = 1;
    for (std::int64_t d : shape) n *= static_cast<std::size_t>(d);
    return n;
}

class OnnxRuntimeBackend final : public Backend {
public:
    OnnxRuntimeBackend(const std::string& path, const EngineOptions& options) : path_(path) {
        struct stat st {};
        if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) throw ModelError(path + ": model file not found");
        Ort::Env& env = runtime_env(options.onnxruntime_library);
        try {
            session_ = std::make_unique<Ort::Session>(env, path.c_str(), session_options(options));
        } catch (const Ort::Exception& e) {
            throw ModelError(path + ": not a loadable ONNX model (" + first_line(e.what()) + ")");
        }
        info_ = parse_model_info(read_metadata(), path);
        check_io();
    }

    const ModelInfo& info() const override { return info_; }

    EngineOutputs run(const float* images, int batch, const float* eps, int samples) const override {
        const auto memory = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeCPU);
        const std::int64_t s = info_.inputsize;
        const std::array<std::int64_t, 4> image_shape = {batch, 1, s, s};
        const std::array<std::int64_t, 2> eps_shape = {samples, info_.latents};
        // ORT only reads inputs; CreateTensor wants a mutable pointer.
        std::array<Ort::Value, 2> inputs = {
            Ort::Value::CreateTensor<float>(memory, const_cast<float*>(images), element_count({batch, 1, s, s}),
                                            image_shape.data(), image_shape.size()),
            Ort::Value::CreateTensor<float>(memory, const_cast<float*>(eps), element_count({samples, info_.latents}),
                                            eps_shape.data(), eps_shape.size())};
        std::vector<Ort::Value> outputs;
        try {
            outputs = session_->Run(Ort::RunOptions{nullptr}, kInputs.data(), inputs.data(), inputs.size(),
                                    kOutputs.data(), has_samples_ ? kOutputs.size() : kRequiredOutputs);
        } catch (const Ort::Exception& e) {
            // the input was checked, so the engine cannot run what its graph declares
            throw ModelError(path_ + ": engine run failed (" + first_line(e.what()) + ")");
        }
        return collect(outputs, batch, samples);
    }

private:
    static Ort::SessionOptions session_options(const EngineOptions& options) {
        Ort::SessionOptions so;
        so.SetIntraOpNumThreads(options.intra_op_threads > 0 ? options.intra_op_threads : 0);  // 0: physical cores
        so.SetInterOpNumThreads(1);
        so.SetExecutionMode(ORT_SEQUENTIAL);
        so.SetGraphOptimizationLevel(options.layout_optimizations ? GraphOptimizationLevel::ORT_ENABLE_ALL
                                                                  : GraphOptimizationLevel::ORT_ENABLE_EXTENDED);
        if (options.memory_pattern)
            so.EnableMemPattern();
        else
            so.DisableMemPattern();
        so.SetLogSeverityLevel(3);
        return so;
    }

    std::map<std::string, std::string> read_metadata() const {
        Ort::AllocatorWithDefaultOptions allocator;
        const Ort::ModelMetadata meta = session_->GetModelMetadata();
        std::map<std::string, std::string> props;
        for (const auto& key : meta.GetCustomMetadataMapKeysAllocated(allocator)) {
            props[key.get()] = meta.LookupCustomMetadataMapAllocated(key.get(), allocator).get();
        }
        return props;
    }

    void check_io() {  // sets has_samples_
        Ort::AllocatorWithDefaultOptions allocator;
        std::vector<std::string> inputs, outputs;
        for (std::size_t i = 0; i < session_->GetInputCount(); ++i)
            inputs.emplace_back(session_->GetInputNameAllocated(i, allocator).get());
        for (std::size_t i = 0; i < session_->GetOutputCount(); ++i)
            outputs.emplace_back(session_->GetOutputNameAllocated(i, allocator).get());
        std::string missing;
        for (std::size_t i = 0; i < kRequiredOutputs; ++i)
            if (std::find(outputs.begin(), outputs.end(), kOutputs[i]) == outputs.end())
                missing += std::string(" ") + kOutputs[i];
        has_samples_ = std::find(outputs.begin(), outputs.end(), kOutputs[kRequiredOutputs]) != outputs.end();
        if (inputs != std::vector<std::string>{kInputs[0], kInputs[1]} || !missing.empty()) {
            throw ModelError(path_ + ": engine inputs/outputs do not match chexmask-rt format " +
                             std::to_string(info_.format_version) + " (missing outputs:" +
                             (missing.empty() ? std::string(" none") : missing) + ")");
        }
        for (std::size_t i = 0; i < inputs.size(); ++i) check_declared(inputs[i], session_->GetInputTypeInfo(i));
        for (std::size_t i = 0; i < outputs.size(); ++i) check_declared(outputs[i], session_->GetOutputTypeInfo(i));
    }

    /// The dimensions the runtime relies on for `name` (0: any, e.g. batch and samples); empty if none.
    std::vector<std::int64_t> expected_shape(const std::string& name) const {
        const std::int64_t s = info_.inputsize, latents = info_.latents;
        if (name == "image") return {0, 1, s, s};
        if (name == "eps" || name == "latent_mu" || name == "latent_sigma") return {0, latents};
        if (name == "landmarks_mean" || name == "landmarks_std" || name == "landmarks_mu") return {0, kLandmarks, 2};
        if (name == "landmarks_samples") return {0, 0, kLandmarks, 2};
        return {};
    }

    std::string why(const std::vector<std::int64_t>& expected) const {
        if (expected.back() == 2) {
            return "the runtime's anatomy has " + std::to_string(kLandmarks) +
                   " landmarks (right lung 44, left lung 50, heart 26)";
        }
        if (expected.size() == 4) return "the metadata says inputsize " + std::to_string(info_.inputsize);
        return "the metadata says latents " + std::to_string(info_.latents);
    }

    static std::string shape_text(const std::vector<std::int64_t>& shape) {
        std::string out = "[";
        for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + (shape[i] > 0 ? std::to_string(shape[i]) : "?");
        return out + "]";
    }

    // Same rules as runtime/chexmask_rt/engine_io.py: every fixed dimension is read from the graph
    // and must be what the metadata and the anatomy say, so a mismatch is a ModelError at load.
    void check_declared(const std::string& name, const Ort::TypeInfo& type_info) const {
        const std::vector<std::int64_t> expected = expected_shape(name);
        if (expected.empty()) return;
        std::vector<std::int64_t> want(expected);
        for (auto& d : want) d = d > 0 ? d : -1;
        const std::string want_text = "float32 " + shape_text(want);
        if (type_info.GetONNXType() != ONNX_TYPE_TENSOR) {
            throw ModelError(path_ + ": engine tensor '" + name + "' is not a tensor (" + want_text + " expected)");
        }
        const auto tensor = type_info.GetTensorTypeAndShapeInfo();
        const std::vector<std::int64_t> shape = tensor.GetShape();
        if (tensor.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || shape.size() != expected.size()) {
            throw ModelError(path_ + ": engine tensor '" + name + "' is not " + want_text + " (declared " +
                             shape_text(shape) + ")");
        }
        for (std::size_t i = 0; i < shape.size(); ++i) {
            if (expected[i] == 0) continue;
            if (shape[i] <= 0) {
                throw ModelError(path_ + ": engine tensor '" + name + "' does not declare its shape " + shape_text(shape) +
                                 " (" + want_text + " expected: " + why(expected) + "); re-export it with chexmask-rt export");
            }
            if (shape[i] != expected[i]) {
                throw ModelError(path_ + ": engine graph disagrees with its metadata: '" + name + "' is " +
                                 shape_text(shape) + ", but " + why(expected) + " (" + want_text + ")");
            }
        }
    }

    // A graph may declare one shape and produce another: each run's outputs are checked again.
    std::vector<float> take(const Ort::Value& value, int batch, const char* name, int samples = 0) const {
        const std::vector<std::int64_t> expected = expected_shape(name);
        const auto shape_info = value.GetTensorTypeAndShapeInfo();
        const std::vector<std::int64_t> shape = shape_info.GetShape();
        std::vector<std::int64_t> want(expected);
        bool batch_dim = true;  // the free dimensions are the batch, then (raw decodes) the samples
        for (auto& d : want) {
            if (d == 0) d = std::exchange(batch_dim, false) ? batch : samples;
        }
        if (shape_info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || shape != want) {
            throw ModelError(path_ + ": engine output '" + name + "' is " + shape_text(shape) + ", not float32 " +
                             shape_text(want));
        }
        const std::size_t count = shape_info.GetElementCount();
        const float* p = value.GetTensorData<float>();
        return std::vector<float>(p, p + count);
    }

    EngineOutputs collect(const std::vector<Ort::Value>& outputs, int batch, int samples) const {
        EngineOutputs out;
        out.batch = batch;
        out.nodes = kLandmarks;
        out.latents = info_.latents;
        out.landmarks_mean = take(outputs[0], batch, kOutputs[0]);
        out.landmarks_std = take(outputs[1], batch, kOutputs[1]);
        out.landmarks_mu = take(outputs[2], batch, kOutputs[2]);
        out.latent_mu = take(outputs[3], batch, kOutputs[3]);
        out.latent_sigma = take(outputs[4], batch, kOutputs[4]);
        if (has_samples_) {
            out.samples = samples;
            out.landmarks_samples = take(outputs[5], batch, kOutputs[5], samples);
        }
        return out;
    }

    std::string path_;
    ModelInfo info_;
    std::unique_ptr<Ort::Session> session_;  // Session::Run is thread safe; per-call state stays local
    bool has_samples_ = false;               // set once by check_io
};

}  // namespace

std::unique_ptr<Backend> open_onnxruntime(const std::string& model_path, const EngineOptions& options) {
    return std::make_unique<OnnxRuntimeBackend>(model_path, options);
}

std::string loaded_onnxruntime_library() {
    std::lock_guard<std::mutex> lock(g_runtime_mutex);
    return g_runtime.library;
}

}  // namespace chexmask_rt::detail
