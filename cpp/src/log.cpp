// The process-wide log callback (set_log_callback).
#include "internal.hpp"

#include <mutex>

namespace chexmask_rt {
namespace {

std::mutex g_log_mutex;
LogCallback g_callback = nullptr;
void* g_user = nullptr;

}  // namespace

void set_log_callback(LogCallback callback, void* user) {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    g_callback = callback;
    g_user = user;
}

namespace detail {

void log(LogLevel level, const std::string& message) {
    std::lock_guard<std::mutex> lock(g_log_mutex);  // the callback is never called after it was replaced
    if (g_callback != nullptr) g_callback(level, message.c_str(), g_user);
}

}  // namespace detail
}  // namespace chexmask_rt
