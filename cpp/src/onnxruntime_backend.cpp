// ONNX Runtime backend through its C++ API. The library is dlopen'ed at run time
// (ORT_API_MANUAL_INIT), so this code builds against the Debian headers and runs
// with any libonnxruntime of the same or a newer API version, e.g. the one inside
// the onnxruntime Python wheel.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>

#include "internal.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <sstream>
#include <string_view>

namespace chexmask_rt::detail {
namespace {

constexpr std::array<const char*, 2> kInputs = {"image", "eps"};

/// The process-wide ONNX Runtime: one library, one Ort::Env, loaded once and never unloaded
/// (sessions may outlive any single Engine, and unloading ORT at exit is known to crash).
struct OrtRuntime {
    std::string library;
    void* handle = nullptr;  // the loaded library's, to tell whether another name means the same file
    Ort::Env* env = nullptr;
};

std::mutex g_runtime_mutex;
OrtRuntime g_runtime;

/// The library asked for: the option, else $CHEXMASK_RT_ONNXRUNTIME_LIBRARY, else "" (the default).
std::string requested_library(const std::string& option) {
    if (!option.empty()) return option;
    if (const char* env = std::getenv("CHEXMASK_RT_ONNXRUNTIME_LIBRARY"); env != nullptr && *env != '\0') return env;
    return "";
}

const OrtApi* api_of(const OrtApiBase* base, const std::string& library) {
    const OrtApi* api = base->GetApi(ORT_API_VERSION);
    if (api == nullptr) {
        throw ModelError("ONNX Runtime " + std::string(base->GetVersionString()) + " at '" + library +
                         "' is older than the API version " + std::to_string(ORT_API_VERSION) +
                         " this build needs (onnxruntime >= 1." + std::to_string(ORT_API_VERSION) + ")");
    }
    return api;
}

const OrtApiBase* load_api_base(const std::string& library) {
    void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* why = dlerror();
        throw ModelError("cannot load the ONNX Runtime library '" + library + "' (" + (why ? why : "unknown error") +
                         "); name a libonnxruntime.so.1.* in the engine options' onnxruntime_library or in "
                         "$CHEXMASK_RT_ONNXRUNTIME_LIBRARY (the onnxruntime Python package has one)");
    }
    using GetApiBase = const OrtApiBase* (*)();
    auto get_api_base = reinterpret_cast<GetApiBase>(dlsym(handle, "OrtGetApiBase"));
    if (get_api_base == nullptr) throw ModelError("'" + library + "' is not an ONNX Runtime library (no OrtGetApiBase)");
    return get_api_base();
}

/// The handle of `library` when the process has it loaded already, by this or any other name (a
/// symlink, another path, its soname: the loader compares the files), else nullptr. Loads nothing.
void* resident(const std::string& library) {
    void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (handle != nullptr) dlclose(handle);  // only counted this look; the first load keeps it
    return handle;
}

/// The ONNX Runtime to use when none is named: the one this build links (-DONNXRUNTIME_ROOT), else
/// libonnxruntime.so.1 from the loader's search path. Sets `library` to what was used.
const OrtApiBase* default_api_base(std::string& library) {
#ifdef CHEXMASK_RT_ONNXRUNTIME_LINKED
    Dl_info where{};
    library = dladdr(reinterpret_cast<void*>(&OrtGetApiBase), &where) != 0 && where.dli_fname != nullptr
                  ? where.dli_fname
                  : "libonnxruntime (linked)";
    return OrtGetApiBase();
#else
    library = "libonnxruntime.so.1";
    return load_api_base(library);
#endif
}

/// Where ONNX Runtime's error lines go while this thread starts an engine's providers (ErrorsSaid):
/// the reason a provider does not start (the CUDA library it could not load, the CUDA and cuDNN it
/// needs) is only logged; its exception says "Failed to load shared library".
thread_local std::vector<std::string>* t_errors_said = nullptr;

/// ONNX Runtime's messages go to set_log_callback's callback, not to stderr.
void ORT_API_CALL forward_log(void* /*param*/, OrtLoggingLevel severity, const char* /*category*/,
                              const char* logid, const char* /*code_location*/, const char* message) {
    if (t_errors_said != nullptr && severity >= ORT_LOGGING_LEVEL_ERROR && message != nullptr) {
        t_errors_said->emplace_back(message);
    }
    log(static_cast<LogLevel>(severity), std::string("onnxruntime[") + (logid ? logid : "") + "]: " + (message ? message : ""));
}

/// Collects the error lines ONNX Runtime logs on this thread for its lifetime.
class ErrorsSaid {
public:
    ErrorsSaid() { t_errors_said = &lines_; }
    ~ErrorsSaid() { t_errors_said = nullptr; }
    ErrorsSaid(const ErrorsSaid&) = delete;
    ErrorsSaid& operator=(const ErrorsSaid&) = delete;
    const std::vector<std::string>& lines() const { return lines_; }

private:
    std::vector<std::string> lines_;
};

Ort::Env& runtime_env(const std::string& option) {
    const HeldLogs held;  // delivered after the lock is released: a callback may open an engine
    std::lock_guard<std::mutex> lock(g_runtime_mutex);
    const std::string requested = requested_library(option);
    if (g_runtime.env != nullptr) {
        if (!option.empty() && option != g_runtime.library &&
            (g_runtime.handle == nullptr || resident(option) != g_runtime.handle)) {
            throw ModelError("ONNX Runtime is already loaded from '" + g_runtime.library +
                             "' in this process; cannot switch to '" + option + "'");
        }
        return *g_runtime.env;
    }
    std::string library = requested;
    // ONNX Runtime's telemetry wrote a device id and an event store (executable path, CPU, OS) under
    // $HOME/.cache and $TMPDIR at every engine load: a runtime inside hospital systems and devices
    // collects nothing. Only this variable, read when ONNX Runtime's environment is created, stops
    // it; a caller who set it keeps its value (the headers say the first engine sets it).
    setenv("ORT_DISABLE_TELEMETRY", "1", 0);
    const OrtApiBase* base = requested.empty() ? default_api_base(library) : load_api_base(requested);
    Ort::InitApi(api_of(base, library));
    g_runtime.env = new Ort::Env(ORT_LOGGING_LEVEL_WARNING, "chexmask_rt", forward_log, nullptr);
    g_runtime.library = library;
    g_runtime.handle = resident(library);
    log(LogLevel::info, "loaded ONNX Runtime " + std::string(base->GetVersionString()) + " from '" + library + "'");
    return *g_runtime.env;
}

/// Running out of memory inside ONNX Runtime: its allocators fail with an Ort::Exception (no error code of
/// its own), which would read as a broken engine; as std::bad_alloc a caller can retry with fewer samples.
class OutOfMemory : public std::bad_alloc {
public:
    explicit OutOfMemory(std::string what) : what_(std::move(what)) {}
    const char* what() const noexcept override { return what_.c_str(); }

private:
    std::string what_;
};

constexpr std::string_view kAllocationFailed = "Failed to allocate memory";  // BFCArena's and CPUAllocator's words

std::string first_line(const char* text) {
    std::string s = text ? text : "";
    const auto nl = s.find('\n');
    return nl == std::string::npos ? s : s.substr(0, nl);
}

/// ONNX Runtime's message on one line: a run's reason is often on its second ("index: 0 Got: 10 Expected: 50").
std::string one_line(const char* text) {
    std::string out, line;
    for (const char* c = text ? text : "";; ++c) {
        if (*c == '\n' || *c == '\0') {
            const auto begin = line.find_first_not_of(" \t\r"), end = line.find_last_not_of(" \t\r");
            if (begin != std::string::npos) out += (out.empty() ? "" : "; ") + line.substr(begin, end - begin + 1);
            line.clear();
            if (*c == '\0') return out;
        } else {
            line += *c;
        }
    }
}

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

/// ONNX Runtime's execution providers for EngineOptions::device, in priority order.
std::vector<std::string> providers_for(const std::string& device) {
    if (device == "cpu") return {"CPUExecutionProvider"};
    if (device == "cuda") return {"CUDAExecutionProvider", "CPUExecutionProvider"};
    // TensorRT takes what it can build; CUDA, then CPU, run the rest
    if (device == "tensorrt") return {"TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"};
    throw ModelError("unknown device '" + device + "'; choose \"cpu\", \"cuda\" or \"tensorrt\"");
}

/// Throws ModelError naming the providers `device` needs that the loaded ONNX Runtime lacks.
void require_available(const std::vector<std::string>& wanted, const std::string& device) {
    const std::vector<std::string> available = Ort::GetAvailableProviders();
    std::vector<std::string> missing;
    for (const std::string& name : wanted)
        if (std::find(available.begin(), available.end(), name) == available.end()) missing.push_back(name);
    if (missing.empty()) return;
    throw ModelError("device '" + device + "' needs ONNX Runtime's " + joined(missing) + ", which the ONNX Runtime at '" +
                     loaded_onnxruntime_library() + "' does not have (it has " + joined(available) +
                     "); use an ONNX Runtime built with it: pip install 'chexmask-rt[gpu]' (onnxruntime-gpu), "
                     "or JetPack's onnxruntime on a Jetson");
}

/// Adds the GPU providers of `options.device` to `so` (the CPU provider is always there, last).
void append_providers(Ort::SessionOptions& so, const EngineOptions& options) {
    const OrtApi& api = Ort::GetApi();
    if (options.device == "tensorrt") {
        OrtTensorRTProviderOptionsV2* trt = nullptr;
        Ort::ThrowOnError(api.CreateTensorRTProviderOptions(&trt));
        const std::unique_ptr<OrtTensorRTProviderOptionsV2, decltype(api.ReleaseTensorRTProviderOptions)> owned(
            trt, api.ReleaseTensorRTProviderOptions);
        if (!options.tensorrt_cache_dir.empty()) {
            const char* dir = options.tensorrt_cache_dir.c_str();
            const std::array<const char*, 4> keys = {"trt_engine_cache_enable", "trt_engine_cache_path",
                                                     "trt_timing_cache_enable", "trt_timing_cache_path"};
            const std::array<const char*, 4> values = {"1", dir, "1", dir};
            Ort::ThrowOnError(api.UpdateTensorRTProviderOptions(trt, keys.data(), values.data(), keys.size()));
        }
        so.AppendExecutionProvider_TensorRT_V2(*trt);
    }
    if (options.device == "cuda" || options.device == "tensorrt") {
        OrtCUDAProviderOptionsV2* cuda = nullptr;
        Ort::ThrowOnError(api.CreateCUDAProviderOptions(&cuda));
        const std::unique_ptr<OrtCUDAProviderOptionsV2, decltype(api.ReleaseCUDAProviderOptions)> owned(
            cuda, api.ReleaseCUDAProviderOptions);
        so.AppendExecutionProvider_CUDA_V2(*cuda);
    }
}

std::size_t element_count(const std::vector<std::int64_t>& shape) {
    std::size_t n = 1;
    for (std::int64_t d : shape) n *= static_cast<std::size_t>(d);
    return n;
}

// Says what is wrong with the path before ONNX Runtime does: its messages quote a bare errno, and a
// file that is there but unreadable must not read as "not found".
void check_model_file(const std::string& path) {
    if (path.empty()) throw ModelError("no model file named (the model path is an empty string)");
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        const int error = errno;
        throw ModelError(path + (error == ENOENT || error == ENOTDIR ? std::string(": model file not found")
                                                                     : ": cannot read the model file (" +
                                                                           std::string(std::strerror(error)) + ")"));
    }
    if (S_ISDIR(st.st_mode)) throw ModelError(path + ": a folder, not a model file");
    if (!S_ISREG(st.st_mode)) throw ModelError(path + ": not a regular file");
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        throw ModelError(path + ": cannot read the model file (" + std::string(std::strerror(errno)) + ")");
    }
    close(fd);
}

class OnnxRuntimeBackend final : public Backend {
public:
    OnnxRuntimeBackend(const ModelSource& model, const EngineOptions& options) : path_(model.name) {
        if (model.data == nullptr) check_model_file(path_);
        const bool checked = check_integrity(model, options.expected_sha256);  // before ONNX Runtime parses them
        Ort::Env& env = runtime_env(options.onnxruntime_library);
        providers_ = providers_for(options.device);
        require_available(providers_, options.device);
        Ort::SessionOptions so = session_options(options);
        {
            const ErrorsSaid said;
            try {
                append_providers(so, options);
            } catch (const Ort::Exception& e) {
                std::string why = first_line(e.what());
                for (const std::string& line : said.lines()) why += "; " + without_source_location(line);
                std::vector<std::string> started(providers_.begin(), providers_.end() - 1);  // CPU always starts
                throw ModelError("device '" + options.device + "': ONNX Runtime could not start " + joined(started) +
                                 " (" + why + ")");
            }
        }
        try {
            session_ = model.data == nullptr ? std::make_unique<Ort::Session>(env, path_.c_str(), so)
                                             : std::make_unique<Ort::Session>(env, model.data, model.size, so);
        } catch (const Ort::Exception& e) {
            const std::string on = options.device == "cpu" ? "" : " on device '" + options.device + "'";
            throw ModelError(path_ + ": not a loadable ONNX model" + on + " (" + first_line(e.what()) + ")");
        }
        const GraphDecl graph = read_graph();
        info_ = parse_model_info(read_metadata(), graph, path_);
        if (!checked && (info_.metadata.count(kIntegrityKey) || info_.metadata.count(kSealedKey))) {
            throw ModelError(path_ + ": damaged: it was sealed at export, but its " + kIntegrityKey +
                             " entry is missing or not in the form an export writes");
        }
        for (const FieldInfo& field : result_fields()) {  // what each run asks for, in the table's order
            const bool has = std::any_of(graph.outputs.begin(), graph.outputs.end(),
                                         [&](const TensorDecl& t) { return t.name == field.output; });
            if (has) outputs_.push_back(field.output);  // Required ones are there: parse_model_info checked
        }
        log(LogLevel::info, path_ + ": " + info_.id() + " opened with ONNX Runtime from '" +
                                loaded_onnxruntime_library() + "' on " + joined(providers_));
    }

    const ModelInfo& info() const override { return info_; }
    const std::vector<std::string>& providers() const override { return providers_; }

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
                                    outputs_.data(), outputs_.size());
        } catch (const Ort::Exception& e) {
            const std::string_view what = e.what();
            if (const auto at = what.find(kAllocationFailed); at != std::string_view::npos) {
                throw OutOfMemory(path_ + ": out of memory running the engine (" + first_line(e.what() + at) +
                                  "); fewer samples or images per call need less");
            }
            // the input was checked, so the engine cannot run what its graph declares
            throw ModelError(path_ + ": engine run failed (" + one_line(e.what()) + ")");
        }
        return collect(outputs, batch, samples);
    }

private:
    static Ort::SessionOptions session_options(const EngineOptions& options) {
        Ort::SessionOptions so;
        // 0: the cores this process may use (cpu_share.cpp); the Engine checked the range
        so.SetIntraOpNumThreads(options.intra_op_threads != 0 ? options.intra_op_threads : default_intra_op_threads());
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

    static TensorDecl declared(std::string name, const Ort::TypeInfo& type_info) {
        TensorDecl t{std::move(name), false, {}};
        if (type_info.GetONNXType() != ONNX_TYPE_TENSOR) return t;
        const auto tensor = type_info.GetTensorTypeAndShapeInfo();
        t.is_float = tensor.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
        t.shape = tensor.GetShape();
        return t;
    }

    GraphDecl read_graph() const {
        Ort::AllocatorWithDefaultOptions allocator;
        GraphDecl graph;
        for (std::size_t i = 0; i < session_->GetInputCount(); ++i)
            graph.inputs.push_back(declared(session_->GetInputNameAllocated(i, allocator).get(), session_->GetInputTypeInfo(i)));
        for (std::size_t i = 0; i < session_->GetOutputCount(); ++i)
            graph.outputs.push_back(declared(session_->GetOutputNameAllocated(i, allocator).get(), session_->GetOutputTypeInfo(i)));
        return graph;
    }

    // A graph may declare one shape and produce another: each run's outputs are checked again.
    std::vector<float> take(const Ort::Value& value, int batch, const char* name, int samples) const {
        const std::vector<std::int64_t> expected = expected_shape(name, info_);
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
        out.nodes = info_.landmarks;
        out.latents = info_.latents;
        out.samples = samples;
        std::size_t next = 0;  // outputs_ holds the table's fields in order, Optional ones only when present
        for (const FieldInfo& field : result_fields()) {
            const bool asked = next < outputs_.size() && outputs_[next] == std::string(field.output);
            out.fields.push_back(asked ? take(outputs[next++], batch, field.output, samples) : std::vector<float>{});
        }
        return out;
    }

    std::string path_;
    ModelInfo info_;
    std::vector<std::string> providers_;     // what the session was created with, best first
    std::unique_ptr<Ort::Session> session_;  // Session::Run is thread safe; per-call state stays local
    std::vector<const char*> outputs_;       // the outputs each run reads, in result_fields() order
};

}  // namespace

std::string without_source_location(const std::string& line) {
    std::string text = first_line(line.c_str());
    const std::string marker = "[ONNXRuntimeError] : ";
    std::string::size_type at = text.find(marker);
    if (at == std::string::npos) return text;
    at += marker.size();
    for (int field = 0; field < 2 && at != std::string::npos; ++field) {  // the status code, then its name
        at = text.find(" : ", at);
        if (at != std::string::npos) at += 3;
    }
    return at == std::string::npos ? text : text.substr(at);
}

std::unique_ptr<Backend> open_onnxruntime(const ModelSource& model, const EngineOptions& options) {
    return std::make_unique<OnnxRuntimeBackend>(model, options);
}

std::string loaded_onnxruntime_library() {
    std::lock_guard<std::mutex> lock(g_runtime_mutex);
    return g_runtime.library;
}

}  // namespace chexmask_rt::detail
