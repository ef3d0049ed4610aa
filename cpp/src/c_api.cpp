// The C API (chexmask_rt_c.h) over the C++ one: every entry point catches everything, so no
// exception crosses into C; failures become a status code plus a per-thread message.
#include <chexmask_rt/chexmask_rt_c.h>

#include "internal.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <vector>

struct chexmask_rt_engine {
    chexmask_rt::Engine engine;
    std::string id;
    std::string providers;
    std::string organs;
    chexmask_rt_model_info info{};
};

struct chexmask_rt_result {
    chexmask_rt::Result result;
    chexmask_rt_result_fields fields{};  // the C ABI 1 view of `result`, pointing into it
};

namespace {

thread_local std::string g_last_error;

// no array of images is longer: a larger count wrapped below zero (n - 1 with n == 0)
constexpr std::size_t kMaxBatchImages = PTRDIFF_MAX / sizeof(chexmask_rt_image);

/// Runs `body`, turning every exception into a status and the thread's last error.
template <typename Body>
chexmask_rt_status guarded(Body&& body) noexcept {
    try {
        body();
        g_last_error.clear();
        return CHEXMASK_RT_OK;
    } catch (const chexmask_rt::InputError& e) {
        g_last_error = e.what();
        return CHEXMASK_RT_INPUT_ERROR;
    } catch (const chexmask_rt::ModelError& e) {
        g_last_error = e.what();
        return CHEXMASK_RT_MODEL_ERROR;
    } catch (const std::bad_alloc& e) {
        // the engine's own says where and how much; the standard library's says only "std::bad_alloc"
        g_last_error = std::strcmp(e.what(), std::bad_alloc().what()) == 0 ? "out of memory" : e.what();
        return CHEXMASK_RT_RUNTIME_ERROR;
    } catch (const std::exception& e) {
        g_last_error = e.what();
        return CHEXMASK_RT_RUNTIME_ERROR;
    } catch (...) {
        g_last_error = "unknown error";
        return CHEXMASK_RT_RUNTIME_ERROR;
    }
}

/// The C++ options for `options`, reading only the fields the caller's struct_size covers.
chexmask_rt::EngineOptions cpp_options(const chexmask_rt_engine_options* options) {
    chexmask_rt::EngineOptions out;
    if (options == nullptr) return out;
    const auto has = [&](std::size_t field_end) { return options->struct_size >= field_end; };
    // shorter than its first option: not a size any header had, so the struct was never initialised
    if (!has(offsetof(chexmask_rt_engine_options, onnxruntime_library) + sizeof(const char*))) {
        throw chexmask_rt::InputError("engine options: struct_size " + std::to_string(options->struct_size) +
                                      " is not a size of chexmask_rt_engine_options; "
                                      "call chexmask_rt_engine_options_init first");
    }
    if (options->onnxruntime_library != nullptr) out.onnxruntime_library = options->onnxruntime_library;
    if (has(offsetof(chexmask_rt_engine_options, intra_op_threads) + sizeof(int)))
        out.intra_op_threads = options->intra_op_threads;
    if (has(offsetof(chexmask_rt_engine_options, device) + sizeof(const char*)) && options->device != nullptr)
        out.device = options->device;
    if (has(offsetof(chexmask_rt_engine_options, tensorrt_cache_dir) + sizeof(const char*)) &&
        options->tensorrt_cache_dir != nullptr)
        out.tensorrt_cache_dir = options->tensorrt_cache_dir;
    if (has(offsetof(chexmask_rt_engine_options, quality_file) + sizeof(const char*)) && options->quality_file != nullptr)
        out.quality_file = options->quality_file;
    if (has(offsetof(chexmask_rt_engine_options, images_per_call) + sizeof(int)))
        out.images_per_call = options->images_per_call;
    if (has(offsetof(chexmask_rt_engine_options, expected_sha256) + sizeof(const char*)) &&
        options->expected_sha256 != nullptr)
        out.expected_sha256 = options->expected_sha256;
    if (has(offsetof(chexmask_rt_engine_options, layout_optimizations) + sizeof(int)))
        out.layout_optimizations = options->layout_optimizations != 0;
    if (has(offsetof(chexmask_rt_engine_options, memory_pattern) + sizeof(int)))
        out.memory_pattern = options->memory_pattern != 0;
    return out;
}

chexmask_rt_engine* wrap(chexmask_rt::Engine engine) {
    auto* handle = new chexmask_rt_engine{std::move(engine), {}, {}, {}, {}};
    const chexmask_rt::ModelInfo& info = handle->engine.info();
    handle->id = info.id();
    for (const std::string& p : handle->engine.providers()) handle->providers += (handle->providers.empty() ? "" : ", ") + p;
    for (const chexmask_rt::Organ& o : info.organs)
        handle->organs += (handle->organs.empty() ? "" : ",") + o.name + ":" + std::to_string(o.count);
    handle->info = {handle->id.c_str(), info.inputsize, info.latents, info.second_look ? 1 : 0, info.trained ? 1 : 0,
                    handle->providers.c_str(), info.landmarks, handle->organs.c_str()};
    return handle;
}

chexmask_rt_result* wrap(chexmask_rt::Result result) {
    auto* handle = new chexmask_rt_result{std::move(result), {}};
    const chexmask_rt::Result& r = handle->result;
    chexmask_rt_result_fields& f = handle->fields;
    f.height = r.height;
    f.width = r.width;
    f.samples = r.samples;
    f.seed = r.seed;
    f.landmark_count = r.landmarks.size();
    f.landmarks = chexmask_rt::detail::flat(r.landmarks);
    f.landmarks_std = chexmask_rt::detail::flat(r.landmarks_std);
    f.landmarks_mu = chexmask_rt::detail::flat(r.landmarks_mu);
    f.node_uncertainty = r.node_uncertainty.data();
    f.latent_count = r.latent_mu.size();
    f.latent_mu = r.latent_mu.data();
    f.latent_sigma = r.latent_sigma.data();
    f.mean_node_std = r.mean_node_std;
    f.mean_latent_sigma = r.mean_latent_sigma;
    if (r.second_look) {
        f.second_look = r.second_look->look.c_str();
        f.first_fill = r.second_look->first_fill;
        f.crop_left = r.second_look->crop_left;
        f.crop_top = r.second_look->crop_top;
        f.crop_side = r.second_look->crop_side;
    }
    f.quality_flag = r.quality.flag ? 1 : 0;
    f.quality_reason = r.quality.reason.c_str();
    f.quality_calibrated = r.quality.calibrated ? 1 : 0;
    return handle;
}

chexmask_rt::ImageView image_view(const chexmask_rt_image& image) {
    chexmask_rt::ImageView view;
    view.data = image.data;
    view.width = image.width;
    view.height = image.height;
    view.stride = image.stride;
    view.bit_depth = image.bit_depth;
    view.size_bytes = image.size_bytes;
    return view;
}

std::optional<bool> look_choice(int second_look) {
    if (second_look < CHEXMASK_RT_SECOND_LOOK_DEFAULT || second_look > CHEXMASK_RT_SECOND_LOOK_ON)
        throw chexmask_rt::InputError("second_look must be -1 (engine default), 0 or 1, got " + std::to_string(second_look));
    return second_look == CHEXMASK_RT_SECOND_LOOK_DEFAULT ? std::nullopt : std::optional<bool>(second_look == 1);
}

void check_out(const void* out) {
    if (out == nullptr) throw chexmask_rt::InputError("the output pointer is NULL");
}

/// result_fields() in the C API's terms, built once.
const std::vector<chexmask_rt_field_info>& c_fields() {
    static const std::vector<chexmask_rt_field_info> fields = [] {
        std::vector<chexmask_rt_field_info> out;
        for (const chexmask_rt::FieldInfo& f : chexmask_rt::result_fields()) {
            out.push_back({f.name, f.output, chexmask_rt::kind_name(f.kind), f.unit, f.need == chexmask_rt::FieldNeed::Required,
                           chexmask_rt::two_looks_name(f.two_looks), f.pooled_with, f.json ? 1 : 0, f.csv, f.doc});
        }
        return out;
    }();
    return fields;
}

}  // namespace

extern "C" {

int chexmask_rt_abi_version(void) { return CHEXMASK_RT_C_ABI_VERSION; }

const char* chexmask_rt_version(void) { return chexmask_rt::version(); }

const char* chexmask_rt_intended_use(void) { return chexmask_rt::kIntendedUse; }

const char* chexmask_rt_last_error(void) { return g_last_error.c_str(); }

void chexmask_rt_set_log_callback(chexmask_rt_log_fn callback, void* user) {
    chexmask_rt::detail::set_c_log_callback(callback, user);
}

void chexmask_rt_engine_options_init(chexmask_rt_engine_options* options) {
    if (options == nullptr) return;
    std::memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
}

chexmask_rt_status chexmask_rt_engine_open(const char* model_path, const chexmask_rt_engine_options* options,
                                           chexmask_rt_engine** out) {
    if (out != nullptr) *out = nullptr;
    return guarded([&] {
        check_out(out);
        if (model_path == nullptr) throw chexmask_rt::InputError("the model path is NULL");
        *out = wrap(chexmask_rt::Engine(model_path, cpp_options(options)));
    });
}

chexmask_rt_status chexmask_rt_engine_open_memory(const void* model_data, size_t model_size,
                                                  const chexmask_rt_engine_options* options,
                                                  chexmask_rt_engine** out) {
    if (out != nullptr) *out = nullptr;
    return guarded([&] {
        check_out(out);
        *out = wrap(chexmask_rt::Engine::from_memory(model_data, model_size, cpp_options(options)));
    });
}

void chexmask_rt_engine_free(chexmask_rt_engine* engine) { delete engine; }

const chexmask_rt_model_info* chexmask_rt_engine_info(const chexmask_rt_engine* engine) {
    return engine == nullptr ? nullptr : &engine->info;
}

chexmask_rt_status chexmask_rt_predict(const chexmask_rt_engine* engine, const chexmask_rt_image* image,
                                       int samples, uint64_t seed, int second_look, chexmask_rt_result** out) {
    if (out != nullptr) *out = nullptr;
    return guarded([&] {
        check_out(out);
        if (engine == nullptr) throw chexmask_rt::InputError("the engine is NULL");
        if (image == nullptr) throw chexmask_rt::InputError("the image is NULL");
        *out = wrap(engine->engine.predict(image_view(*image), samples, seed, look_choice(second_look)));
    });
}

chexmask_rt_status chexmask_rt_predict_batch(const chexmask_rt_engine* engine, const chexmask_rt_image* images,
                                             size_t count, int samples, uint64_t seed, int second_look,
                                             chexmask_rt_result** out) {
    std::vector<chexmask_rt_result*> made;
    const chexmask_rt_status status = guarded([&] {
        check_out(out);
        if (engine == nullptr) throw chexmask_rt::InputError("the engine is NULL");
        if (images == nullptr) throw chexmask_rt::InputError("the images are NULL");
        if (count > kMaxBatchImages) {
            throw chexmask_rt::InputError("count " + std::to_string(count) +
                                          " cannot be the length of an array of images (did it wrap below zero?)");
        }
        // cleared once the arguments make sense: a count that wrapped below zero wrote far past the array
        std::fill(out, out + count, nullptr);
        const std::optional<bool> look = look_choice(second_look);
        std::vector<chexmask_rt::ImageView> views;
        views.reserve(count);
        for (std::size_t i = 0; i < count; ++i) views.push_back(image_view(images[i]));
        std::vector<chexmask_rt::Result> results = engine->engine.predict_batch(views, samples, seed, look);
        made.reserve(results.size());
        for (chexmask_rt::Result& r : results) made.push_back(wrap(std::move(r)));
    });
    if (status != CHEXMASK_RT_OK) {
        for (chexmask_rt_result* r : made) delete r;
        return status;
    }
    std::copy(made.begin(), made.end(), out);
    return status;
}

void chexmask_rt_result_free(chexmask_rt_result* result) { delete result; }

const chexmask_rt_result_fields* chexmask_rt_result_get(const chexmask_rt_result* result) {
    return result == nullptr ? nullptr : &result->fields;
}

int chexmask_rt_result_spread_measured(const chexmask_rt_result* result) {
    return result != nullptr && result->result.spread_measured() ? 1 : 0;
}

int chexmask_rt_result_bit_depth(const chexmask_rt_result* result) {
    return result == nullptr ? 0 : result->result.bit_depth;
}

size_t chexmask_rt_field_count(void) { return c_fields().size(); }

const chexmask_rt_field_info* chexmask_rt_field_info_at(size_t index) {
    return index < c_fields().size() ? &c_fields()[index] : nullptr;
}

chexmask_rt_status chexmask_rt_result_field(const chexmask_rt_result* result, const char* name,
                                            chexmask_rt_field_values* out) {
    if (out != nullptr) *out = chexmask_rt_field_values{nullptr, 0, 0};
    return guarded([&] {
        check_out(out);
        if (result == nullptr) throw chexmask_rt::InputError("the result is NULL");
        if (name == nullptr) throw chexmask_rt::InputError("the field name is NULL");
        const auto& fields = chexmask_rt::result_fields();
        for (std::size_t i = 0; i < fields.size(); ++i) {
            if (std::strcmp(fields[i].name, name) != 0) continue;
            const chexmask_rt::FieldValues v = chexmask_rt::field_values(result->result, i);
            *out = chexmask_rt_field_values{v.data, v.rows, v.columns};
            return;
        }
        throw chexmask_rt::InputError(std::string("a result has no field '") + name + "'");
    });
}


chexmask_rt_status chexmask_rt_polygon_mask(const double* points_xy, size_t count, int height, int width,
                                            uint8_t* out, size_t out_size) {
    return guarded([&] {
        if (points_xy == nullptr && count > 0) throw chexmask_rt::InputError("polygon_mask: the points are NULL");
        if (count > SIZE_MAX / sizeof(chexmask_rt::Point))  // the points could not be one array
            throw chexmask_rt::InputError("polygon_mask: " + std::to_string(count) + " points are more than memory holds");
        const std::size_t bytes = chexmask_rt::detail::polygon_mask_bytes(height, width);
        if (out == nullptr) throw chexmask_rt::InputError("polygon_mask: the output buffer is NULL");
        if (out_size < bytes)
            throw chexmask_rt::InputError("polygon_mask: the output buffer has " + std::to_string(out_size) +
                                          " bytes; a " + std::to_string(width) + "x" + std::to_string(height) +
                                          " mask needs " + std::to_string(bytes));
        chexmask_rt::detail::fill_polygon(reinterpret_cast<const chexmask_rt::Point*>(points_xy), count, height, width,
                                          out, false);
    });
}

}  // extern "C"
