// TensorRT 10 backend (CHEXMASK_RT_WITH_TENSORRT). Not compiled on the CI machines,
// which have no TensorRT; see cpp/README.md for how it was checked.
//
// Engine file: MODEL.plan, built by `chexmask-rt build-trt` from the ONNX engine,
// with a sidecar MODEL.plan.meta of `key=value` lines: the ONNX file's chexmask_rt.*
// metadata plus trt.version, trt.compute_capability, trt.precision, onnx.sha256.
// A plan is only valid for the TensorRT version and GPU it was built with, so both
// are checked here and a mismatch is refused with a message saying what to rebuild.
#include "internal.hpp"

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <sstream>

namespace chexmask_rt::detail {
namespace {

class Logger final : public nvinfer1::ILogger {
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kERROR) std::cerr << "chexmask_rt[TensorRT]: " << msg << "\n";
    }
};

Logger g_logger;

void cuda_check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw Error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

std::map<std::string, std::string> read_meta(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw ModelError(path + ": missing; a TensorRT plan needs the .meta file 'chexmask-rt build-trt' writes beside it");
    std::map<std::string, std::string> meta;
    for (std::string line; std::getline(in, line);) {
        const auto eq = line.find('=');
        if (!line.empty() && line[0] != '#' && eq != std::string::npos) meta[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return meta;
}

std::string runtime_trt_version() {
    const int v = getInferLibVersion();  // TensorRT 10: major * 10000 + minor * 100 + patch
    return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

std::string device_compute_capability() {
    int device = 0;
    cudaDeviceProp prop{};
    cuda_check(cudaGetDevice(&device), "cudaGetDevice");
    cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    return std::to_string(prop.major) + "." + std::to_string(prop.minor);
}

void check_plan_key(const std::map<std::string, std::string>& meta, const std::string& path) {
    auto get = [&](const char* k) { auto it = meta.find(k); return it == meta.end() ? std::string("?") : it->second; };
    const std::string trt = runtime_trt_version(), cc = device_compute_capability();
    if (get("trt.version") != trt || get("trt.compute_capability") != cc) {
        throw ModelError(path + ": built for TensorRT " + get("trt.version") + " on compute capability " +
                         get("trt.compute_capability") + " (" + get("trt.precision") + ", ONNX sha256 " +
                         get("onnx.sha256").substr(0, 12) + "); this is TensorRT " + trt + " on compute capability " +
                         cc + ": rebuild it here with 'chexmask-rt build-trt'");
    }
}

std::vector<char> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ModelError(path + ": model file not found");
    return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::size_t volume(const nvinfer1::Dims& d) {
    std::size_t n = 1;
    for (int i = 0; i < d.nbDims; ++i) n *= static_cast<std::size_t>(d.d[i] < 0 ? 0 : d.d[i]);
    return n;
}

/// One execution context with its stream and buffers, allocated once at the profile's maximum.
struct Context {
    nvinfer1::IExecutionContext* ctx = nullptr;
    cudaStream_t stream = nullptr;
    std::map<std::string, void*> device;   // every I/O tensor
    std::map<std::string, float*> pinned;  // host side of image, eps and the five outputs
    ~Context() {
        for (auto& [_, p] : device) cudaFree(p);
        for (auto& [_, p] : pinned) cudaFreeHost(p);
        if (stream) cudaStreamDestroy(stream);
        delete ctx;
    }
};

constexpr const char* kOutputs[] = {"landmarks_mean", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma"};

class TensorRtBackend final : public Backend {
public:
    TensorRtBackend(const std::string& path, const EngineOptions&) : path_(path) {
        const auto meta = read_meta(path + ".meta");
        info_ = parse_model_info(meta, path);
        check_plan_key(meta, path);
        const std::vector<char> plan = read_file(path);
        runtime_.reset(nvinfer1::createInferRuntime(g_logger));
        engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
        if (!engine_) throw ModelError(path + ": TensorRT could not deserialize this plan");
        max_batch_ = engine_->getProfileShape("image", 0, nvinfer1::OptProfileSelector::kMAX).d[0];
        max_samples_ = engine_->getProfileShape("eps", 0, nvinfer1::OptProfileSelector::kMAX).d[0];
        nodes_ = static_cast<int>(engine_->getTensorShape("landmarks_mean").d[1]);
        if (max_batch_ < 1 || max_samples_ < 1 || nodes_ < 1) throw ModelError(path + ": plan lacks image/eps profiles");
        const nvinfer1::Dims image = engine_->getTensorShape("image"), eps = engine_->getTensorShape("eps");
        if (nodes_ != kLandmarks || image.nbDims != 4 || image.d[2] != info_.inputsize || image.d[3] != info_.inputsize ||
            eps.nbDims != 2 || eps.d[1] != info_.latents) {
            // as onnxruntime_backend.cpp: the plan's shapes must be what its metadata and the anatomy say
            throw ModelError(path + ": engine graph disagrees with its metadata (landmarks " + std::to_string(nodes_) +
                             ", expected " + std::to_string(kLandmarks) + "; inputsize " +
                             std::to_string(info_.inputsize) + "; latents " + std::to_string(info_.latents) + ")");
        }
    }

    ~TensorRtBackend() override {
        for (Context* c : free_) delete c;
    }

    const ModelInfo& info() const override { return info_; }

    EngineOutputs run(const float* images, int batch, const float* eps, int samples) const override {
        if (batch > max_batch_ || samples > max_samples_) {
            throw InputError(path_ + ": this plan takes at most " + std::to_string(max_batch_) + " images and " +
                             std::to_string(max_samples_) + " samples per call; rebuild with larger --max-batch/--max-samples");
        }
        Context* c = acquire();
        try {
            EngineOutputs out = run_on(*c, images, batch, eps, samples);
            release(c);
            return out;
        } catch (...) {
            delete c;  // state unknown after a failure: never reuse
            throw;
        }
    }

private:
    // IExecutionContext is not thread safe: each concurrent call gets its own from a pool.
    Context* acquire() const {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!free_.empty()) {
                Context* c = free_.back();
                free_.pop_back();
                return c;
            }
        }
        return create_context();
    }

    void release(Context* c) const {
        std::lock_guard<std::mutex> lock(mutex_);
        free_.push_back(c);
    }

    Context* create_context() const {
        auto c = std::make_unique<Context>();
        c->ctx = engine_->createExecutionContext();
        if (!c->ctx) throw Error(path_ + ": cannot create a TensorRT execution context");
        cuda_check(cudaStreamCreate(&c->stream), "cudaStreamCreate");
        const std::int64_t s = info_.inputsize;
        c->ctx->setInputShape("image", nvinfer1::Dims4{max_batch_, 1, s, s});
        c->ctx->setInputShape("eps", nvinfer1::Dims2{max_samples_, info_.latents});
        for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
            const char* name = engine_->getIOTensorName(i);
            const std::size_t bytes = volume(c->ctx->getTensorShape(name)) * sizeof(float);
            void* p = nullptr;
            cuda_check(cudaMalloc(&p, bytes), "cudaMalloc");
            c->device[name] = p;
            c->ctx->setTensorAddress(name, p);  // fixed for the context's life
        }
        for (const char* name : {"image", "eps", kOutputs[0], kOutputs[1], kOutputs[2], kOutputs[3], kOutputs[4]}) {
            void* p = nullptr;
            cuda_check(cudaMallocHost(&p, volume(c->ctx->getTensorShape(name)) * sizeof(float)), "cudaMallocHost");
            c->pinned[name] = static_cast<float*>(p);
        }
        return c.release();
    }

    EngineOutputs run_on(Context& c, const float* images, int batch, const float* eps, int samples) const {
        const std::int64_t s = info_.inputsize;
        const std::size_t image_n = static_cast<std::size_t>(batch) * s * s;
        const std::size_t eps_n = static_cast<std::size_t>(samples) * info_.latents;
        std::memcpy(c.pinned["image"], images, image_n * sizeof(float));
        std::memcpy(c.pinned["eps"], eps, eps_n * sizeof(float));
        cuda_check(cudaMemcpyAsync(c.device["image"], c.pinned["image"], image_n * sizeof(float), cudaMemcpyHostToDevice, c.stream), "H2D image");
        cuda_check(cudaMemcpyAsync(c.device["eps"], c.pinned["eps"], eps_n * sizeof(float), cudaMemcpyHostToDevice, c.stream), "H2D eps");
        if (!c.ctx->setInputShape("image", nvinfer1::Dims4{batch, 1, s, s}) ||
            !c.ctx->setInputShape("eps", nvinfer1::Dims2{samples, info_.latents})) {
            throw InputError(path_ + ": batch/samples outside the plan's optimisation profile");
        }
        if (!c.ctx->enqueueV3(c.stream)) throw Error(path_ + ": TensorRT enqueueV3 failed");
        EngineOutputs out;
        out.batch = batch;
        out.nodes = nodes_;
        out.latents = info_.latents;
        std::vector<float>* dst[] = {&out.landmarks_mean, &out.landmarks_std, &out.landmarks_mu, &out.latent_mu, &out.latent_sigma};
        std::size_t counts[5];
        for (int k = 0; k < 5; ++k) {
            counts[k] = volume(c.ctx->getTensorShape(kOutputs[k]));
            cuda_check(cudaMemcpyAsync(c.pinned[kOutputs[k]], c.device[kOutputs[k]], counts[k] * sizeof(float),
                                       cudaMemcpyDeviceToHost, c.stream), "D2H output");
        }
        cuda_check(cudaStreamSynchronize(c.stream), "cudaStreamSynchronize");
        for (int k = 0; k < 5; ++k) dst[k]->assign(c.pinned[kOutputs[k]], c.pinned[kOutputs[k]] + counts[k]);
        return out;
    }

    std::string path_;
    ModelInfo info_;
    std::unique_ptr<nvinfer1::IRuntime> runtime_;
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    std::int64_t max_batch_ = 0;
    std::int64_t max_samples_ = 0;
    int nodes_ = 0;
    mutable std::mutex mutex_;
    mutable std::vector<Context*> free_;
};

}  // namespace

std::unique_ptr<Backend> open_tensorrt(const std::string& engine_path, const EngineOptions& options) {
    return std::make_unique<TensorRtBackend>(engine_path, options);
}

}  // namespace chexmask_rt::detail
