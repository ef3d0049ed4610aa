# shellcheck shell=sh
# Sourced by scripts/cross_aarch64.sh and scripts/check_wheel_aarch64.sh: running aarch64 programs
# that load ONNX Runtime under qemu-user.
#
#   qemu_aarch64_cpuinfo SYSROOT   # writes SYSROOT/proc/cpuinfo; then qemu-aarch64 -L SYSROOT ...
#
# qemu-user shows the guest the host's /proc/cpuinfo (x86), on which ONNX Runtime's CPU detection
# crashes while the library loads; qemu reads paths under its -L root first, so give it an aarch64
# one: Jetson Orin's Cortex-A78AE, one entry per CPU that /sys lists.
qemu_aarch64_cpuinfo() {
    mkdir -p "$1/proc"
    _cpu=0
    while [ "$_cpu" -lt "$(getconf _NPROCESSORS_CONF)" ]; do
        printf 'processor\t: %d\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n' "$_cpu"
        _cpu=$((_cpu + 1))
    done > "$1/proc/cpuinfo"
}
