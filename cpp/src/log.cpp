// The process-wide log callback (set_log_callback, chexmask_rt_set_log_callback).
//
// A callback runs outside every lock of this library, so that it may call the library (which logs
// again, or opens an engine). Replacing the callback waits for the deliveries in progress: once
// set_log_callback returns, the old callback is not running and its `user` may be freed.
#include "internal.hpp"

#include <mutex>
#include <thread>
#include <utility>

namespace chexmask_rt {
namespace {

struct Sink {
    LogCallback cpp = nullptr;
    detail::CLogCallback c = nullptr;  // the C API's, which takes the level as an int
    void* user = nullptr;
};

std::mutex g_log_mutex;  // guards the three below
Sink g_sink;
int g_in_flight = 0;  // deliveries running now, of any callback

thread_local int t_delivering = 0;  // this thread's deliveries running now (a callback that logs nests)
thread_local std::vector<std::pair<LogLevel, std::string>>* t_held = nullptr;  // HeldLogs of this thread

void replace(const Sink& sink) {
    std::unique_lock<std::mutex> lock(g_log_mutex);
    g_sink = sink;
    // A callback replacing the callback cannot wait for itself (nor for another thread doing the same)
    if (t_delivering != 0) return;
    // Polled, not a std::condition_variable: GCC 12's wait() is GLIBCXX_3.4.30, which would raise the
    // libstdc++ every prebuilt library needs, for a wait that is rare and as short as one callback
    while (g_in_flight != 0) {
        lock.unlock();
        std::this_thread::yield();
        lock.lock();
    }
}

void deliver(LogLevel level, const std::string& message) noexcept {
    Sink sink;
    {
        std::lock_guard<std::mutex> lock(g_log_mutex);
        if (g_sink.cpp == nullptr && g_sink.c == nullptr) return;
        sink = g_sink;
        ++g_in_flight;
    }
    ++t_delivering;
    try {  // a failing callback must not fail the work that logged
        if (sink.cpp != nullptr) sink.cpp(level, message.c_str(), sink.user);
        else sink.c(static_cast<int>(level), message.c_str(), sink.user);
    } catch (...) {
    }
    --t_delivering;
    std::lock_guard<std::mutex> lock(g_log_mutex);
    --g_in_flight;
}

}  // namespace

void set_log_callback(LogCallback callback, void* user) { replace({callback, nullptr, user}); }

namespace detail {

void set_c_log_callback(CLogCallback callback, void* user) { replace({nullptr, callback, user}); }

void log(LogLevel level, const std::string& message) {
    if (t_held != nullptr) {
        t_held->emplace_back(level, message);
        return;
    }
    deliver(level, message);
}

HeldLogs::HeldLogs() : outer_(t_held) { t_held = &messages_; }

HeldLogs::~HeldLogs() {
    t_held = outer_;
    try {
        for (const auto& [level, message] : messages_) log(level, message);
    } catch (...) {  // out of memory, holding them for an outer HeldLogs: they are lost, not fatal
    }
}

}  // namespace detail
}  // namespace chexmask_rt
