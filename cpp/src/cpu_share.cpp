// How many physical cores this process may use: the engine's default thread count.
//
// ONNX Runtime's own default (0 intra-op threads) is one thread per physical core of the machine,
// each pinned to its core. A process confined to fewer CPUs (taskset, a container's cpuset, a
// Kubernetes static CPU policy) then ran a thread pinned to a CPU outside its set, and one held to a
// CPU quota (a container's CPU limit) ran as many threads as the machine has cores, for its share of
// a few. So the engine asks for the cores of its affinity set, at most its quota's CPUs, rounded up.
#include "internal.hpp"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#ifdef __linux__
#include <sched.h>
#include <unistd.h>
#endif

namespace chexmask_rt::detail {
namespace {

std::string first_line_of(const std::string& path) {
    std::ifstream file(path);
    std::string line;
    std::getline(file, line);
    return line;
}

/// The physical core CPU `cpu` belongs to, as (package, core); the CPU itself where sysfs says nothing.
std::pair<std::string, std::string> core_of(int cpu) {
    const std::string topology = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const std::string core = first_line_of(topology + "core_id");
    if (core.empty()) return {"cpu", std::to_string(cpu)};
    return {first_line_of(topology + "physical_package_id"), core};
}

/// The CPUs `quota` microseconds per `period` stand for, rounded up; 0 for no quota.
int quota_cpus(long long quota, long long period) {
    if (quota <= 0 || period <= 0) return 0;
    return static_cast<int>(std::ceil(static_cast<double>(quota) / static_cast<double>(period)));
}

/// The CPU quota of this process's cgroup in CPUs (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us); 0: none.
int cgroup_quota_cpus() {
    std::ifstream self("/proc/self/cgroup");
    std::string line;
    while (std::getline(self, line)) {  // "id:controllers:path"
        const auto first = line.find(':'), second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        const std::string controllers = "," + line.substr(first + 1, second - first - 1) + ",";
        const std::string path = line.substr(second + 1);
        if (controllers == ",,") {  // cgroup v2: "quota period" or "max period"
            std::istringstream max(first_line_of("/sys/fs/cgroup" + path + "/cpu.max"));
            std::string quota;
            long long period = 0;
            if (max >> quota >> period && quota != "max") return quota_cpus(std::atoll(quota.c_str()), period);
        } else if (controllers.find(",cpu,") != std::string::npos) {
            for (const char* mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
                const std::string folder = mount + (path == "/" ? std::string() : path);
                const std::string quota = first_line_of(folder + "/cpu.cfs_quota_us");
                if (!quota.empty()) {
                    return quota_cpus(std::atoll(quota.c_str()), std::atoll(first_line_of(folder + "/cpu.cfs_period_us").c_str()));
                }
            }
        }
    }
    return 0;
}

}  // namespace

int default_intra_op_threads() {
#ifdef __linux__
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 0;
    const long configured = sysconf(_SC_NPROCESSORS_CONF);
    std::set<std::pair<std::string, std::string>> machine, ours;
    for (int cpu = 0; cpu < CPU_SETSIZE && cpu < configured; ++cpu) {
        machine.insert(core_of(cpu));
        if (CPU_ISSET(cpu, &allowed)) ours.insert(core_of(cpu));
    }
    int threads = static_cast<int>(ours.size());
    const int quota = cgroup_quota_cpus();
    if (quota > 0 && quota < threads) threads = quota;
    // every core and no quota: ONNX Runtime's own default, as before
    return threads > 0 && threads < static_cast<int>(machine.size()) ? std::min(threads, kMaxIntraOpThreads) : 0;
#else
    return 0;
#endif
}

}  // namespace chexmask_rt::detail
