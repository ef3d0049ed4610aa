"""What the ELF files inside a wheel need from the system: the libraries they name (DT_NEEDED) and
the highest symbol version of each family (GLIBC_*, GLIBCXX_*, CXXABI_*) they ask for.

    python scripts/wheel_elf.py WHEEL [--json] [--check]

--check also lists what a manylinux_2_28 system may lack and exits 1 if anything. scripts/build_wheel.sh
runs it on the wheel it made; tests/test_wheel.py checks the same. It reads the version-needs table
itself (pyelftools, which auditwheel brings), so it works the same on an x86-64 or an aarch64 wheel,
without a cross objdump.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sys
import zipfile

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

# manylinux_2_28 (PEP 600, auditwheel's policy): glibc 2.28 and GCC 8's libstdc++ at most
LIMITS = {"GLIBC": (2, 28), "GLIBCXX": (3, 4, 25), "CXXABI": (1, 3, 11)}
FAMILIES = tuple(LIMITS)
# What the wheel may need from the system: glibc's own libraries, nothing else. Stricter than
# manylinux, which also allows libstdc++ and libgcc_s: the core links libc++ statically.
GLIBC_LIBRARIES = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                   "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}


def version_key(version: str) -> tuple[int, ...]:
    """'GLIBC_2.28' -> (2, 28), so that 2.3 sorts below 2.28."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def elf_needs(data: bytes) -> dict:
    """The machine, the needed libraries and the highest version per family of one ELF file."""
    elf = ELFFile(io.BytesIO(data))
    needed: list[str] = []
    versions: dict[str, list[str]] = {family: [] for family in FAMILIES}
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            needed += [tag.needed for tag in section.iter_tags("DT_NEEDED")]
        elif isinstance(section, GNUVerNeedSection):
            for _, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    family = aux.name.split("_", 1)[0]
                    if family in versions:
                        versions[family].append(aux.name)
    highest = {family: max(names, key=version_key) if names else None for family, names in versions.items()}
    return {"machine": elf["e_machine"], "needed": needed, "highest": highest}


def wheel_elfs(path: str) -> dict[str, dict]:
    """elf_needs() of every ELF member of the wheel, by member name."""
    report = {}
    with zipfile.ZipFile(path) as wheel:
        for name in wheel.namelist():
            data = wheel.read(name)
            if data[:4] == b"\x7fELF":
                report[name] = elf_needs(data)
    return report


def beyond_manylinux_2_28(report: dict[str, dict]) -> list[str]:
    """What in a wheel_elfs() report a manylinux_2_28 system may lack, one line per ELF and need:
    a symbol version above LIMITS, a library outside glibc."""
    problems = []
    for name, needs in report.items():
        for family, highest in needs["highest"].items():
            if highest and version_key(highest) > LIMITS[family]:
                problems.append(f"{name}: {highest}")
        problems += [f"{name}: needs {lib}" for lib in needs["needed"] if lib not in GLIBC_LIBRARIES]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a manylinux_2_28 system may lack a need")
    args = parser.parse_args(argv)
    report = wheel_elfs(args.wheel)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        for name, needs in report.items():
            highest = " ".join(v for v in needs["highest"].values() if v) or "no versioned symbols"
            print(f"{name} ({needs['machine']}): highest {highest}; needs {', '.join(needs['needed'])}")
    if not args.check:
        return 0
    if not report:
        print("wheel_elf: no ELF file in the wheel", file=sys.stderr)
        return 1
    problems = beyond_manylinux_2_28(report)
    for problem in problems:
        print(f"beyond manylinux_2_28: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
