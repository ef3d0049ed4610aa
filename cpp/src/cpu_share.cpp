// How many physical cores this process may use: the engine's default thread count.
//
// ONNX Runtime's own default (0 intra-op threads) is one thread per physical core of the machine,
// each pinned to its core. A process confined to fewer CPUs (taskset, a container's cpuset, a
// Kubernetes static CPU policy) then ran a thread pinned to a CPU outside its set, and one held to a
// CPU quota (a container's CPU limit) ran as many threads as the machine has cores, for its share of
// a few. So the engine asks for the cores of its affinity set, at most its quota's CPUs, rounded up.
#include "internal.hpp"

#include <cerrno>
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

/// The smaller of two quotas in CPUs, 0 standing for none.
int smaller_quota(int a, int b) { return a > 0 && (b <= 0 || a < b) ? a : b; }

/// The smallest quota, in CPUs, of `folder` and the folders above it up to `mount`, read by `quota_of`; 0:
/// none. Walking up finds a parent's quota too (a pod's above its container's), and the mount itself
/// is where a container sees its own cgroup when /proc/self/cgroup names it by the host's path
/// (Docker on cgroup v1 without a cgroup namespace): that path does not exist inside it.
template <typename QuotaOf>
int smallest_quota(const std::string& mount, std::string path, QuotaOf quota_of) {
    int smallest = 0;
    while (true) {
        smallest = smaller_quota(quota_of(mount + path), smallest);
        if (path.empty() || path == "/") return smallest;
        path = path.substr(0, path.find_last_of('/'));
    }
}

}  // namespace

int cgroup_quota_cpus(std::istream& self, const std::string& root) {
    std::string line;
    while (std::getline(self, line)) {  // "id:controllers:path"
        const auto first = line.find(':'), second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        const std::string controllers = "," + line.substr(first + 1, second - first - 1) + ",";
        const std::string path = line.substr(second + 1);
        if (controllers == ",,") {  // cgroup v2: "quota period" or "max period"
            return smallest_quota(root, path, [](const std::string& folder) {
                std::istringstream max(first_line_of(folder + "/cpu.max"));
                std::string quota;
                long long period = 0;
                return max >> quota >> period && quota != "max" ? quota_cpus(std::atoll(quota.c_str()), period) : 0;
            });
        }
        if (controllers.find(",cpu,") != std::string::npos) {
            int smallest = 0;
            for (const char* mount : {"/cpu", "/cpu,cpuacct"}) {
                smallest = smaller_quota(smallest_quota(root + mount, path, [](const std::string& folder) {
                    return quota_cpus(std::atoll(first_line_of(folder + "/cpu.cfs_quota_us").c_str()),
                                      std::atoll(first_line_of(folder + "/cpu.cfs_period_us").c_str()));
                }), smallest);
            }
            return smallest;
        }
    }
    return 0;
}

CpuShare cpu_share() {
#ifdef __linux__
    // A machine may have more CPUs than a fixed cpu_set_t holds (CPU_SETSIZE, 1024): the call then fails
    // with EINVAL, so the set grows until it fits.
    std::size_t cpus = CPU_SETSIZE;
    cpu_set_t* allowed = nullptr;
    while (allowed == nullptr && cpus <= (std::size_t{1} << 18)) {
        allowed = CPU_ALLOC(cpus);
        if (allowed == nullptr) return {};
        if (sched_getaffinity(0, CPU_ALLOC_SIZE(cpus), allowed) != 0) {
            CPU_FREE(allowed);
            allowed = nullptr;
            if (errno != EINVAL) return {};
            cpus *= 2;
        }
    }
    if (allowed == nullptr) return {};
    // CPU ids may be sparse: every id the set can hold that sysfs knows is one of the machine's
    std::set<std::pair<std::string, std::string>> machine, ours;
    int cpus_allowed = 0;
    for (std::size_t cpu = 0; cpu < cpus; ++cpu) {
        const bool mine = CPU_ISSET_S(cpu, CPU_ALLOC_SIZE(cpus), allowed);
        cpus_allowed += mine ? 1 : 0;
        const auto core = core_of(static_cast<int>(cpu));
        if (core.first == "cpu") continue;  // no topology for this id
        machine.insert(core);
        if (mine) ours.insert(core);
    }
    CPU_FREE(allowed);
    int threads = static_cast<int>(ours.size()), cores = static_cast<int>(machine.size());
    if (cores == 0) {  // no topology in sysfs (a masked /sys): count CPUs
        threads = cpus_allowed;
        cores = static_cast<int>(sysconf(_SC_NPROCESSORS_CONF));
    }
    std::ifstream self("/proc/self/cgroup");
    const int quota = cgroup_quota_cpus(self, "/sys/fs/cgroup");
    if (quota > 0 && quota < threads) threads = quota;
    return {threads, cores};
#else
    return {};
#endif
}

int default_intra_op_threads() {
    const CpuShare share = cpu_share();
    // every core and no quota: ONNX Runtime's own default, as before
    return share.usable > 0 && share.usable < share.machine ? std::min(share.usable, kMaxIntraOpThreads) : 0;
}

}  // namespace chexmask_rt::detail
