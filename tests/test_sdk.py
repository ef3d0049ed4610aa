"""The C++ SDK as a device integrator meets it: the C API's example program, `cmake --install`
with an out-of-tree find_package consumer, and the offline build against an ONNX Runtime folder.

Needs the CMake build in build/ (scripts/setup_and_test.sh makes it; $CHEXMASK_RT_BUILD_DIR
points elsewhere). The builds here are time-boxed: a few small files, or the core alone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

import chexmask_rt
from chexmask_rt.image_io import read_image, to_gray

from conftest import REPO, skip_or_fail_without_native

try:  # the package needs the core: without it nothing below runs, and CI (REQUIRE_NATIVE) must fail
    from chexmask_rt import core
except ImportError as exc:
    skip_or_fail_without_native(f"chexmask_rt.core: {exc}", allow_module_level=True)

BUILD = Path(os.environ.get("CHEXMASK_RT_BUILD_DIR", REPO / "build"))
CPP_EXAMPLE = BUILD / "cpp" / "chexmask-rt-cpp"
C_EXAMPLE = BUILD / "cpp" / "chexmask-rt-c"
ORT_HEADERS = BUILD / "_deps" / "onnxruntime-headers" / "include"
BUILD_TIMEOUT = 600  # seconds for one configure + build of the core on a 2-core machine


def _require(program: Path) -> Path:
    if not program.is_file():
        skip_or_fail_without_native(f"{program} not built (configure with -DCHEXMASK_RT_BUILD_EXAMPLES=ON)")
    return program


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=BUILD_TIMEOUT, **kwargs)


def _checked(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = _run(cmd, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def pgm_images(shared_images, tmp_path_factory) -> list[Path]:
    """Gray PGMs both example programs read: 8-bit, and 12 significant bits in 16 (the C program reads
    no PNG; OpenCV reads PGM, so both get the same pixels from the same file name)."""
    root = tmp_path_factory.mktemp("pgm")
    out = []
    for path in shared_images:
        if path.suffix != ".png":  # JPEG decoders differ between OpenCV builds; PNG and PGM are exact
            continue
        gray = to_gray(read_image(path))
        out.append(root / f"{path.stem}.pgm")
        cv2.imwrite(str(out[-1]), gray)
    out.append(root / "twelve_bit.pgm")
    cv2.imwrite(str(out[-1]), gray.astype(np.uint16) * 16)
    return out


def test_c_example_passes_the_depth_a_pgm_declares(tmp_path, shared_images, default_segmenter):
    """A 12-bit detector's dark exposure as a PGM (maxval 4095, brightest pixel below 2048): the C program,
    the template to copy, read it at the inferred 11 bits, twice as bright (landmarks ~3 px off), where
    the header tells device code to pass the detector's depth."""
    c = _require(C_EXAMPLE)
    dark = to_gray(read_image(next(p for p in shared_images if p.suffix == ".png"))).astype(np.uint16) * 7
    assert 1024 <= dark.max() < 2048
    pgm = tmp_path / "dark12.pgm"
    pgm.write_bytes(f"P5\n{dark.shape[1]} {dark.shape[0]}\n4095\n".encode() + dark.astype(">u2").tobytes())
    printed = np.array(json.loads(_json(c, [pgm], "--single-look"))["landmarks"])  # one image: one object
    twelve = default_segmenter.predict(dark, samples=12, seed=5, bit_depth=12, second_look=False).landmarks
    inferred = default_segmenter.predict(dark, samples=12, seed=5, second_look=False).landmarks
    assert np.abs(printed - twelve).max() < 1e-6 and np.abs(twelve - inferred).max() > 0.5


def _json(program: Path, images: list[Path], *args, library: str | None = None, **kwargs) -> str:
    lib = [] if library == "" else ["--onnxruntime", library or core.onnxruntime_library()]
    cmd = [program, "--model", chexmask_rt.default_model_path(), "--samples", "12", "--seed", "5", *lib, *args, *images]
    return _checked(cmd, **kwargs).stdout


def test_c_example_prints_the_cpp_examples_json(pgm_images):
    c, cpp = _require(C_EXAMPLE), _require(CPP_EXAMPLE)
    want = _json(cpp, pgm_images, "--second-look")
    assert want.startswith("[\n{") and '"look": "pooled"' in want
    assert _json(c, pgm_images, "--second-look") == want
    assert _json(c, pgm_images, "--second-look", "--from-memory") == want
    one = _json(cpp, pgm_images[:1])  # the shipped engine's default: one engine call
    assert '"second_look"' not in one and _json(c, pgm_images[:1]) == one
    assert _json(c, pgm_images[:1], "--single-look") == _json(cpp, pgm_images[:1], "--single-look") == one


def test_a_name_that_is_not_utf8_is_written_alike_in_every_json(tmp_path, pgm_images):
    """A file name from an old archive, not UTF-8: the C and C++ examples copied its bytes into their JSON,
    which no JSON reader takes, where `predict --json` writes Python's \\udcXX escapes."""
    import sys

    stem = os.fsdecode(b"old \xff archive \xc3\xa9 \xe2\x82")  # a lone byte, a valid letter, a cut one
    pgm, png = tmp_path / f"{stem}.pgm", tmp_path / f"{stem}.png"  # the C example reads PGM, Python no PGM
    shutil.copy(pgm_images[0], pgm)
    # by bytes: cv2.imwrite of a name holding a lone surrogate ends the process (OpenCV 5.1's bindings)
    png.write_bytes(cv2.imencode(".png", cv2.imread(str(pgm_images[0]), cv2.IMREAD_UNCHANGED))[1].tobytes())
    lib = core.onnxruntime_library()
    said = {}
    for label, program, name in (("c", _require(C_EXAMPLE), pgm), ("cpp", _require(CPP_EXAMPLE), png)):
        proc = subprocess.run([str(program), "--model", str(chexmask_rt.default_model_path()), "--onnxruntime", lib,
                               "--samples", "2", str(name)], capture_output=True, timeout=BUILD_TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        said[label] = json.loads(proc.stdout)["image"]  # bytes in: a reader takes UTF-8 only
    proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "predict", str(png), "--samples", "2", "--json", "-"],
                          capture_output=True, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    said["python"] = json.loads(proc.stdout)["image"]
    assert said == {"c": str(pgm), "cpp": str(png), "python": str(png)}, said
    assert os.fsencode(said["c"]) == os.fsencode(pgm)  # the bytes of the file, back


def test_the_c_api_default_look_is_the_engines_own(tmp_path, pgm_images):
    """CHEXMASK_RT_SECOND_LOOK_DEFAULT (-1) must follow the engine's metadata: taken as off, C callers never
    got the second look of an engine exported with it on (the shipped engine's default is off, so every
    other test looked the same)."""
    from toy_engine import write_toy_engine

    c = _require(C_EXAMPLE)
    looks = write_toy_engine(tmp_path / "looks.onnx", metadata={"second_look": "true"})
    lib = ["--onnxruntime", core.onnxruntime_library()]
    default = _checked([c, "--model", looks, "--samples", "2", *lib, pgm_images[0]]).stdout
    single = _checked([c, "--model", looks, "--samples", "2", *lib, "--single-look", pgm_images[0]]).stdout
    assert '"second_look"' in default and '"second_look"' not in single


def test_c_example_prints_the_reliability_flag(tmp_path, pgm_images, default_segmenter):
    """The C API's quality fields, as the C example prints them: the shipped model's verdict (its calibration
    beside it, also read from memory), and "not calibrated" for a copy without one."""
    c = _require(C_EXAMPLE)
    gray = cv2.imread(str(pgm_images[0]), cv2.IMREAD_UNCHANGED)  # the package reads no PGM
    want = default_segmenter.predict(gray, samples=12, seed=5).quality.to_dict()
    assert want["calibrated"] and want["reason"]
    for args in ([], ["--from-memory"]):
        assert json.loads(_json(c, pgm_images[:1], *args))["quality"] == want
    copy = tmp_path / "copy.onnx"
    shutil.copy(chexmask_rt.default_model_path(), copy)
    for args in ([], ["--from-memory"]):
        out = _checked([c, "--model", copy, "--samples", "2", "--onnxruntime", core.onnxruntime_library(), *args,
                        pgm_images[0]]).stdout
        quality = json.loads(out)["quality"]
        assert quality["flag"] is False and quality["calibrated"] is False
        assert quality["reason"].startswith("not calibrated for this model")


def test_c_example_exit_codes(tmp_path, pgm_images):
    c = _require(C_EXAMPLE)
    model, lib = chexmask_rt.default_model_path(), core.onnxruntime_library()
    bad = tmp_path / "bad.pgm"
    bad.write_bytes(b"P5\n12 12\n255\nshort")
    assert _run([c, "--model", model, "--onnxruntime", lib, bad]).returncode == 3
    tiny = tmp_path / "tiny.pgm"
    cv2.imwrite(str(tiny), np.zeros((8, 8), np.uint8))
    proc = _run([c, "--model", model, "--onnxruntime", lib, tiny])
    assert proc.returncode == 3 and "32" in proc.stderr
    proc = _run([c, "--model", bad, "--onnxruntime", lib, "--from-memory", pgm_images[0]])
    assert proc.returncode == 4 and "<memory>" in proc.stderr
    assert _run([c, "--model", model]).returncode == 2
    for asked in ("--help", "-h"):  # was "unknown option" (exit 2)
        proc = _run([c, asked])
        assert proc.returncode == 0 and proc.stdout.startswith("usage: chexmask-rt-c") and proc.stderr == ""
    proc = _run([c, "--model", model, "--onnxruntime", "/nonexistent/libonnxruntime.so.1", pgm_images[0]])
    assert proc.returncode == 4 and "cannot load the ONNX Runtime library" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    # numbers past what the option holds are refused, not wrapped into another number
    for option, text in [("--samples", "4294967346"), ("--threads", "4294967297"), ("--samples", "2147483648"),
                         ("--seed", "99999999999999999999999"), ("--samples", "+5")]:
        proc = _run([c, "--model", model, "--onnxruntime", lib, option, text, pgm_images[0]])
        assert proc.returncode == 2 and proc.stdout == "", (option, text, proc.stdout)
        assert "out of range" in proc.stderr or "non-negative integer" in proc.stderr, proc.stderr


def test_examples_name_a_refused_image_and_keep_the_others(tmp_path, pgm_images):
    """One refused image among several: the C example left cut JSON on stdout and the C++ one printed
    nothing, dropping the answers before it; neither named the file. Now both print the others' list,
    name the file, and exit 1 (as the Python CLI: some of several images failed)."""
    c, cpp = _require(C_EXAMPLE), _require(CPP_EXAMPLE)
    model, lib = chexmask_rt.default_model_path(), core.onnxruntime_library()
    tiny = tmp_path / "tiny.pgm"
    cv2.imwrite(str(tiny), np.zeros((16, 16), np.uint8))
    outputs = []
    for program in (c, cpp):
        proc = _run([program, "--model", model, "--onnxruntime", lib, "--samples", 2, pgm_images[0], tiny, pgm_images[1]])
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.endswith(f": error: {tiny}: image is 16x16 pixels; at least 32x32 is needed\n"), proc.stderr
        assert [r["image"] for r in json.loads(proc.stdout)] == [str(pgm_images[0]), str(pgm_images[1])]
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]


def test_the_cpp_example_refuses_what_opencv_would_misread(tmp_path, shared_images):
    """OpenCV's imread filled a cut JPEG in (298 px off, unflagged), and one whose data is damaged
    mid-stream (64.7 px off on average, 'within calibrated thresholds'), and misread valid TIFFs (alpha
    multiplied in, 16-bit WhiteIsZero uninverted, a thumbnail page first), where the Python reader
    refuses or reads them right: the template integrators copy answered for another picture."""
    cpp = _require(CPP_EXAMPLE)
    model, lib = chexmask_rt.default_model_path(), core.onnxruntime_library()
    jpeg = next(p for p in shared_images if p.suffix == ".jpg")
    data = jpeg.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) * 6 // 10])
    damaged = bytearray(data)
    middle = (data.find(b"\xff\xda") + len(data)) // 2
    damaged[middle:middle + 64] = bytes((b * 37 + 11) & 0x7F for b in data[middle:middle + 64])  # no markers
    (tmp_path / "damaged.jpg").write_bytes(bytes(damaged))
    cv2.imwrite(str(tmp_path / "x.tif"), cv2.imread(str(jpeg), cv2.IMREAD_GRAYSCALE))
    with pytest.raises(chexmask_rt.InputError, match="damaged JPEG: Corrupt JPEG data"):  # as the Python reader says
        read_image(tmp_path / "damaged.jpg")
    import imagecodecs

    twelve = (np.random.default_rng(0).random((64, 64)) * 4095).astype(np.uint16)  # sound, but not 8-bit
    (tmp_path / "twelve.jpg").write_bytes(imagecodecs.jpeg8_encode(twelve, bitspersample=12))
    for name, why in (("cut.jpg", "damaged JPEG: Premature end of JPEG file"),
                      ("damaged.jpg", "damaged JPEG: Corrupt JPEG data"),
                      ("twelve.jpg", "a JPEG this example does not read (Unsupported JPEG data precision 12)"),
                      ("x.tif", "a TIFF, which this example does not read")):
        proc = _run([cpp, "--model", model, "--onnxruntime", lib, "--samples", 2, tmp_path / name])
        assert proc.returncode == 3 and f"{tmp_path / name}: {why}" in proc.stderr and proc.stdout == "", proc.stderr
    whole = _run([cpp, "--model", model, "--onnxruntime", lib, "--samples", 2, jpeg])
    assert whole.returncode == 0 and json.loads(whole.stdout)["width"] > 0, whole.stderr


def _consumer(tmp_path: Path, prefix: Path, **kwargs) -> Path:
    """tests/cmake_consumer configured on the package at `prefix`, at C++14 as GCC 9/10 default to: the
    package must raise it to the C++17 its header needs."""
    build = tmp_path / "consumer"
    _checked(["cmake", "-S", REPO / "tests" / "cmake_consumer", "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}",
              f"-DCHEXMASK_RT_EXAMPLES={REPO / 'cpp' / 'examples'}", "-DCMAKE_BUILD_TYPE=Release",
              "-DCMAKE_CXX_STANDARD=14"], **kwargs)
    return build


def test_installed_package_builds_a_find_package_consumer(tmp_path, pgm_images):
    """cmake --install, then a project outside the tree: find_package(chexmask_rt CONFIG REQUIRED),
    the C example on the shared library and the C++ example on the static one."""
    cpp = _require(CPP_EXAMPLE)
    prefix = tmp_path / "prefix"
    _checked(["cmake", "--install", BUILD, "--prefix", prefix])
    libdir = next(p for p in (prefix / "lib", prefix / "lib64") if p.is_dir())
    assert (prefix / "include" / "chexmask_rt" / "chexmask_rt.hpp").is_file()
    assert (prefix / "include" / "chexmask_rt" / "chexmask_rt_c.h").is_file()
    assert (libdir / "libchexmask_rt.a").is_file() and list(libdir.glob("libchexmask_rt.so*"))
    assert (libdir / "cmake" / "chexmask_rt" / "chexmask_rtConfigVersion.cmake").is_file()
    # internals stay private: no src/ header (the schema table is public: the Result's members come from
    # it), and the shared library exports only the public API
    assert sorted(p.name for p in (prefix / "include" / "chexmask_rt").iterdir()) == [
        "api.h", "chexmask_rt.hpp", "chexmask_rt_c.h", "result_fields.def"]
    exported = _checked(["nm", "-D", "--defined-only", "-C", libdir / "libchexmask_rt.so"]).stdout
    assert "chexmask_rt_predict" in exported and "chexmask_rt::Engine::predict" in exported
    names = [line.split(" ", 2)[2] for line in exported.splitlines() if line.count(" ") >= 2]
    assert not [n for n in names if n.startswith("chexmask_rt::detail::")]

    build = _consumer(tmp_path, prefix)
    _checked(["cmake", "--build", build, "-j2"])
    want = _json(cpp, pgm_images[:1])
    assert _json(build / "consumer-c", pgm_images[:1]) == want
    assert _json(build / "consumer-cpp-static", pgm_images[:1]) == want
    needed = _checked(["readelf", "-d", build / "consumer-c"]).stdout
    assert "libchexmask_rt.so" in needed
    assert "libchexmask_rt.so" not in _checked(["readelf", "-d", build / "consumer-cpp-static"]).stdout


@pytest.fixture(scope="module")
def onnxruntime_root(tmp_path_factory) -> Path:
    """An ONNX Runtime release-archive layout: include/ (the headers the build already has) and lib/
    (the onnxruntime wheel's library, with the archive's symlinks)."""
    if not (ORT_HEADERS / "onnxruntime_cxx_api.h").is_file():
        skip_or_fail_without_native(f"no ONNX Runtime headers in {ORT_HEADERS}")
    root = tmp_path_factory.mktemp("onnxruntime-linux-x64")
    shutil.copytree(ORT_HEADERS, root / "include")
    (root / "lib").mkdir()
    library = Path(core.onnxruntime_library())
    (root / "lib" / library.name).symlink_to(library)
    (root / "lib" / "libonnxruntime.so.1").symlink_to(library.name)
    (root / "lib" / "libonnxruntime.so").symlink_to("libonnxruntime.so.1")
    for notice in ("LICENSE", "ThirdPartyNotices.txt"):  # at the archive's top, as released
        shutil.copy(library.parent.parent / notice, root / notice)
    return root


def test_the_onnxruntime_headers_are_fetched_into_a_folder_with_a_space(tmp_path):
    """apt's settings were -o words built from the folder's path: under a folder with a space (a
    checkout in "My Projects") apt got "space/..." as a command, and a source install failed, blaming
    apt, the network or the keyring."""
    dest = tmp_path / "with space" / "onnxruntime-headers"
    proc = _run(["sh", REPO / "cpp" / "cmake" / "fetch_onnxruntime_headers.sh", dest])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (dest / "include" / "onnxruntime_c_api.h").is_file() and (dest / "include" / "onnxruntime_cxx_api.h").is_file()


def _offline_env() -> dict[str, str]:
    """A mirror that refuses connections: any attempt to download the headers fails at once."""
    env = dict(os.environ, CHEXMASK_RT_DEBIAN_MIRROR="http://127.0.0.1:9/debian")
    env.pop("CHEXMASK_RT_ONNXRUNTIME_LIBRARY", None)
    return env


@pytest.fixture(scope="module")
def sdk_build(tmp_path_factory, onnxruntime_root) -> tuple[Path, str]:
    """The README's device-SDK build, offline against `onnxruntime_root`: its folder and configure output
    (both libraries and the C example; built once, for the tests below)."""
    build = tmp_path_factory.mktemp("sdk") / "build"
    configure = _checked(["cmake", "-S", REPO / "cpp", "-B", build, f"-DONNXRUNTIME_ROOT={onnxruntime_root}",
                          "-DCHEXMASK_RT_BUILD_EXAMPLES=ON"], env=_offline_env())
    _checked(["cmake", "--build", build, "-j2", "--target", "chexmask-rt-c"])
    return build, configure.stdout


def test_offline_build_links_the_given_onnxruntime(sdk_build, onnxruntime_root, pgm_images):
    cpp = _require(CPP_EXAMPLE)
    build, configure = sdk_build
    assert "Fetching" not in configure and not (build / "_deps").exists()
    assert f"ONNX Runtime library (linked): {onnxruntime_root}" in configure
    program = build / "chexmask-rt-c"
    assert "libonnxruntime.so.1" in _checked(["readelf", "-d", build / "libchexmask_rt.so"]).stdout
    # no library named anywhere: the linked one runs, with the same numbers
    assert _json(program, pgm_images[:1], library="") == _json(cpp, pgm_images[:1])


def test_installed_sdk_runs_with_the_onnxruntime_it_installs_beside_it(tmp_path, sdk_build, onnxruntime_root,
                                                                       pgm_images):
    """cmake --install of the SDK build, then a find_package consumer of the shared library: its link
    resolves libchexmask_rt.so's libonnxruntime.so.1 through the package, and at run time the library
    finds libonnxruntime.so.1 in its own folder ($ORIGIN), where the install put it (the README's recipe
    gave a program that did not start until the library was copied by hand), with the build machine's
    library out of reach."""
    cpp = _require(CPP_EXAMPLE)
    build, _ = sdk_build
    prefix = tmp_path / "prefix"
    _checked(["cmake", "--install", build, "--prefix", prefix])
    libdir = next(p for p in (prefix / "lib", prefix / "lib64") if p.is_dir())
    dynamic = _checked(["readelf", "-d", libdir / "libchexmask_rt.so"]).stdout
    assert "[libonnxruntime.so.1]" in dynamic and "runpath: [$ORIGIN]" in dynamic
    installed = Path(core.onnxruntime_library()).name  # the file, under its own name, and the soname link
    assert (libdir / installed).is_file() and not (libdir / installed).is_symlink()
    assert os.readlink(libdir / "libonnxruntime.so.1") == installed
    assert str(libdir / "libonnxruntime.so.1") in (build / "install_manifest.txt").read_text().split()  # uninstalls
    # the licences travel with the copy (the SDK held none: Apache-2.0 section 4, ONNX Runtime's MIT notice)
    docs = prefix / "share" / "doc" / "chexmask_rt"
    assert (docs / "LICENSE").read_bytes() == (REPO / "LICENSE").read_bytes()
    assert (docs / "NOTICE").read_bytes() == (REPO / "NOTICE").read_bytes()
    for notice in ("LICENSE", "ThirdPartyNotices.txt"):
        assert (docs / "onnxruntime" / notice).read_bytes() == (onnxruntime_root / notice).read_bytes()
    # the execution providers ONNX Runtime loads from its library's folder (the wheel's, beside the file)
    providers = sorted(p.name for p in Path(core.onnxruntime_library()).parent.glob("libonnxruntime_providers_*.so"))
    assert providers and sorted(p.name for p in libdir.glob("libonnxruntime_providers_*.so")) == providers

    env = _offline_env()
    env.pop("LD_LIBRARY_PATH", None)
    consumer = _consumer(tmp_path, prefix, env=env)
    _checked(["cmake", "--build", consumer, "-j2", "--target", "consumer-c"], env=env)
    program = consumer / "consumer-c"
    away = onnxruntime_root.with_name(onnxruntime_root.name + "-gone")
    onnxruntime_root.rename(away)
    try:
        assert f"libonnxruntime.so.1 => {libdir / 'libonnxruntime.so.1'}" in _checked(["ldd", program], env=env).stdout
        assert _json(program, pgm_images[:1], library="", env=env) == _json(cpp, pgm_images[:1])
    finally:
        away.rename(onnxruntime_root)


@pytest.mark.skipif(shutil.which("pkg-config") is None or shutil.which("cc") is None, reason="needs pkg-config and cc")
def test_an_installed_sdk_builds_a_c_program_by_pkg_config(tmp_path, sdk_build, onnxruntime_root, pgm_images):
    """A device maker's Makefile (Yocto, Buildroot) finds libraries by pkg-config: the SDK offered only a
    CMake package. The .pc file finds its prefix from its own folder, so the prefix may move whole."""
    cpp = _require(CPP_EXAMPLE)
    build, _ = sdk_build
    _checked(["cmake", "--install", build, "--prefix", tmp_path / "prefix"])
    moved = tmp_path / "device-sdk"
    (tmp_path / "prefix").rename(moved)
    libdir = next(p for p in (moved / "lib", moved / "lib64") if p.is_dir())
    env = dict(_offline_env(), PKG_CONFIG_PATH=str(libdir / "pkgconfig"))
    env.pop("LD_LIBRARY_PATH", None)
    assert _checked(["pkg-config", "--modversion", "chexmask_rt"], env=env).stdout.strip() == \
        (REPO / "VERSION").read_text().strip()
    flags = _checked(["pkg-config", "--cflags", "--libs", "chexmask_rt"], env=env).stdout.split()
    program = tmp_path / "c-example"
    away = onnxruntime_root.with_name(onnxruntime_root.name + "-elsewhere")
    onnxruntime_root.rename(away)  # the link and the run use the library the SDK installed
    try:
        _checked(["cc", "-O1", REPO / "cpp" / "examples" / "chexmask_rt_c.c", "-o", program, *flags], env=env)
        ran = dict(env, LD_LIBRARY_PATH=str(libdir))
        assert _json(program, pgm_images[:1], library="", env=ran) == _json(cpp, pgm_images[:1])
    finally:
        away.rename(onnxruntime_root)


def test_a_project_that_adds_the_core_as_a_subdirectory_keeps_its_own_build(tmp_path, onnxruntime_root, pgm_images):
    """add_subdirectory (or FetchContent) of cpp/: the core forced the whole project's CMAKE_BUILD_TYPE to
    Release and added its headers, libraries and packages to the project's own cmake --install."""
    cpp = _require(CPP_EXAMPLE)
    project = _project(tmp_path / "parent", f"""project(parent LANGUAGES C CXX)
add_subdirectory({REPO / "cpp"} chexmask-rt)
add_executable(app {REPO / "cpp" / "examples" / "chexmask_rt_c.c"})
target_link_libraries(app PRIVATE chexmask_rt::chexmask_rt m)
file(WRITE ${{CMAKE_BINARY_DIR}}/build_type.txt "[${{CMAKE_BUILD_TYPE}}]")
install(TARGETS app)
""", {})
    build = tmp_path / "build"
    _checked(["cmake", "-S", project, "-B", build, f"-DONNXRUNTIME_ROOT={onnxruntime_root}"], env=_offline_env())
    assert (build / "build_type.txt").read_text() == "[]"  # the project's, untouched
    _checked(["cmake", "--build", build, "-j2", "--target", "app"])
    assert "-O2" in (build / "chexmask-rt" / "CMakeFiles" / "chexmask_rt.dir" / "flags.make").read_text()
    assert _json(build / "app", pgm_images[:1], library="") == _json(cpp, pgm_images[:1])
    _checked(["cmake", "--install", build, "--prefix", tmp_path / "prefix"])
    installed = sorted(str(p.relative_to(tmp_path / "prefix")) for p in (tmp_path / "prefix").rglob("*") if p.is_file())
    assert installed == ["bin/app"]


def test_a_moved_sdk_links_its_static_library_to_the_onnxruntime_beside_it(tmp_path, sdk_build, onnxruntime_root,
                                                                          pgm_images):
    """The package records the build machine's ONNX Runtime library for the static target; once the SDK
    had moved, a consumer's build failed with make's bare "No rule to make target <that path>"."""
    cpp = _require(CPP_EXAMPLE)
    build, _ = sdk_build
    prefix = tmp_path / "prefix"
    _checked(["cmake", "--install", build, "--prefix", prefix])
    libdir = next(p for p in (prefix / "lib", prefix / "lib64") if p.is_dir())
    for installed in libdir.glob("libonnxruntime.so*"):  # a device SDK whose integrator left it out
        installed.unlink()
    away = onnxruntime_root.with_name(onnxruntime_root.name + "-away")
    onnxruntime_root.rename(away)  # the build machine's library is not on this one
    try:
        proc = _run(["cmake", "-S", REPO / "tests" / "cmake_consumer", "-B", tmp_path / "refused",
                     f"-DCMAKE_PREFIX_PATH={prefix}", f"-DCHEXMASK_RT_EXAMPLES={REPO / 'cpp' / 'examples'}"],
                    env=_offline_env())
        assert proc.returncode != 0
        assert f"put libonnxruntime.so or libonnxruntime.so.<version> in {libdir}" in " ".join(proc.stderr.split())
        (libdir / "libonnxruntime.so.1").symlink_to(Path(core.onnxruntime_library()))
        consumer = _consumer(tmp_path, prefix, env=_offline_env())
        _checked(["cmake", "--build", consumer, "-j2", "--target", "consumer-cpp-static"])
    finally:
        away.rename(onnxruntime_root)
    assert _json(consumer / "consumer-cpp-static", pgm_images[:1]) == _json(cpp, pgm_images[:1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`cmake --install` of the build in build/ to a fresh prefix."""
    prefix = tmp_path_factory.mktemp("installed") / "prefix"
    _checked(["cmake", "--install", BUILD, "--prefix", prefix])
    return prefix


def _project(root: Path, cmake: str, sources: dict[str, str]) -> Path:
    root.mkdir()
    (root / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.18)\n" + cmake)
    for name, text in sources.items():
        (root / name).write_text(text)
    return root


def test_the_package_leaves_a_projects_onnxruntime_target_names_free(tmp_path, installed):
    """The package made onnxruntime::headers (and ::onnxruntime) in the project's scope: a project that
    then made its own, as find modules do, stopped with "another target with the same name already
    exists" (or, behind if(NOT TARGET), silently got the package's, without include directories)."""
    project = _project(tmp_path / "own", """project(own LANGUAGES C CXX)
find_package(chexmask_rt CONFIG REQUIRED)
add_library(onnxruntime::onnxruntime SHARED IMPORTED)
add_library(onnxruntime::headers INTERFACE IMPORTED)
""", {})
    _checked(["cmake", "-S", project, "-B", tmp_path / "build", f"-DCMAKE_PREFIX_PATH={installed}"])


def test_cxx_enabled_after_find_package_still_gets_cxx17(tmp_path, installed):
    """The package asked for C++17 only if C++ was enabled when it was found: a C project that enabled
    C++ afterwards compiled chexmask_rt.hpp as C++14 and failed on std::optional."""
    project = _project(tmp_path / "late", """project(late LANGUAGES C)
find_package(chexmask_rt CONFIG REQUIRED)
enable_language(CXX)
add_executable(app app.cpp)
target_link_libraries(app PRIVATE chexmask_rt::chexmask_rt)
""", {"app.cpp": "#include <chexmask_rt/chexmask_rt.hpp>\n"
                 "int main() { return chexmask_rt::version()[0] != 0 ? 0 : 1; }\n"})
    build = tmp_path / "build"
    _checked(["cmake", "-S", project, "-B", build, f"-DCMAKE_PREFIX_PATH={installed}", "-DCMAKE_CXX_STANDARD=14"])
    _checked(["cmake", "--build", build])
    _checked([build / "app"])


def test_an_onnxruntime_folder_copied_without_its_links_installs_a_runnable_sdk(tmp_path, onnxruntime_root):
    """A release folder copied with cp -rL or unzipped holds libonnxruntime.so as a plain file: the install
    put that file alone, and libchexmask_rt.so, which needs libonnxruntime.so.1, could not load."""
    root = tmp_path / "onnxruntime-copied"
    shutil.copytree(onnxruntime_root / "include", root / "include")
    (root / "lib").mkdir()
    shutil.copyfile(core.onnxruntime_library(), root / "lib" / "libonnxruntime.so")
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    _checked(["cmake", "-S", REPO / "cpp", "-B", build, f"-DONNXRUNTIME_ROOT={root}"], env=_offline_env())
    _checked(["cmake", "--build", build, "-j2", "--target", "chexmask_rt_shared"])
    _checked(["cmake", "--install", build, "--prefix", prefix])
    libdir = next(p for p in (prefix / "lib", prefix / "lib64") if p.is_dir())
    assert os.readlink(libdir / "libonnxruntime.so.1") == "libonnxruntime.so"
    assert str(libdir / "libonnxruntime.so.1") in (build / "install_manifest.txt").read_text().split()
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    resolved = _checked(["ldd", libdir / "libchexmask_rt.so"], env=env).stdout
    assert f"libonnxruntime.so.1 => {libdir / 'libonnxruntime.so.1'}" in resolved, resolved


def test_header_fetch_failure_names_the_offline_option(tmp_path):
    proc = _run(["cmake", "-S", REPO / "cpp", "-B", tmp_path / "build", "-DONNXRUNTIME_INCLUDE_DIR="],
                env=_offline_env())
    if "ONNX Runtime headers:" in proc.stdout and proc.returncode == 0:
        pytest.skip("this machine has system ONNX Runtime headers, so nothing is fetched")
    assert proc.returncode != 0
    assert "Could not fetch the ONNX Runtime headers" in proc.stderr and "-DONNXRUNTIME_ROOT=" in proc.stderr
    assert 'CMAKE_ARGS="-DONNXRUNTIME_INCLUDE_DIR=' in " ".join(proc.stderr.split())  # how pip passes it


def test_onnxruntime_root_without_a_library_is_refused(tmp_path):
    (tmp_path / "ort" / "include").mkdir(parents=True)
    proc = _run(["cmake", "-S", REPO / "cpp", "-B", tmp_path / "build", f"-DONNXRUNTIME_ROOT={tmp_path / 'ort'}"],
                env=_offline_env())
    assert proc.returncode != 0 and "is not an ONNX Runtime release folder" in proc.stderr
    # the device recipe's mistake once: a relative link whose target is read from the wrong folder
    (tmp_path / "ort" / "lib").mkdir()
    (tmp_path / "ort" / "lib" / "libonnxruntime.so").symlink_to("ort/lib/libonnxruntime.so.1.32.0")
    proc = _run(["cmake", "-S", REPO / "cpp", "-B", tmp_path / "build2", f"-DONNXRUNTIME_ROOT={tmp_path / 'ort'}"],
                env=_offline_env())
    assert proc.returncode != 0 and "lib/libonnxruntime.so is a link to nothing" in " ".join(proc.stderr.split())


OUT_OF_MEMORY_C = r"""
#include <chexmask_rt/chexmask_rt_c.h>
#include <stdio.h>
#include <sys/resource.h>

static unsigned long long mapped_bytes(void) {
    FILE* f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmSize: %llu kB", &kb) == 1) break;
    }
    if (f) fclose(f);
    return kb * 1024;
}

int main(int argc, char** argv) {
    static unsigned char pixels[256 * 256];
    for (int i = 0; i < 256 * 256; ++i) pixels[i] = (unsigned char)(i % 256);
    chexmask_rt_image image = {pixels, 256, 256, 256, 8, sizeof pixels};
    chexmask_rt_engine* engine = NULL;
    chexmask_rt_result* result = NULL;
    if (argc < 2 || chexmask_rt_engine_open(argv[1], NULL, &engine) != CHEXMASK_RT_OK ||
        chexmask_rt_predict(engine, &image, 2, 0, CHEXMASK_RT_SECOND_LOOK_OFF, &result) != CHEXMASK_RT_OK) {
        fprintf(stderr, "%s\n", chexmask_rt_last_error());
        return 2;
    }
    chexmask_rt_result_free(result);
    struct rlimit limit;
    limit.rlim_cur = limit.rlim_max = mapped_bytes() + (600ULL << 20);
    setrlimit(RLIMIT_AS, &limit);
    int status = chexmask_rt_predict(engine, &image, 10000, 0, CHEXMASK_RT_SECOND_LOOK_OFF, &result);
    printf("%d %s\n", status, chexmask_rt_last_error());
    status = chexmask_rt_predict(engine, &image, 5, 0, CHEXMASK_RT_SECOND_LOOK_OFF, &result);
    printf("%d\n", status);
    chexmask_rt_result_free(result);
    chexmask_rt_engine_free(engine);
    return 0;
}
"""


def test_the_c_api_says_out_of_memory_as_its_header_does(tmp_path):
    """An engine run that ran out of memory was CHEXMASK_RT_MODEL_ERROR ("engine run failed"), where the
    header promises CHEXMASK_RT_RUNTIME_ERROR: an integrator would throw away a working engine."""
    library = BUILD / "cpp" / "libchexmask_rt.so"
    if not library.is_file():
        skip_or_fail_without_native(f"{library} not built")
    (tmp_path / "oom.c").write_text(OUT_OF_MEMORY_C)
    _checked(["cc", "-std=c99", "-D_DEFAULT_SOURCE", "-I", REPO / "cpp" / "include", tmp_path / "oom.c", "-o",
              tmp_path / "oom", "-L", library.parent, "-lchexmask_rt", f"-Wl,-rpath,{library.parent}"])
    proc = _checked([tmp_path / "oom", chexmask_rt.default_model_path()],
                    env=os.environ | {"CHEXMASK_RT_ONNXRUNTIME_LIBRARY": core.onnxruntime_library()})
    first, then = proc.stdout.splitlines()
    assert first.startswith("3 ") and "out of memory running the engine" in first, first  # CHEXMASK_RT_RUNTIME_ERROR
    assert then == "0"


def test_the_cpp_example_reports_running_out_of_memory_instead_of_aborting(pgm_images):
    """std::bad_alloc went past the example's catch list: "terminate called", SIGABRT (exit 134), where
    the C example exits 3. Under a 1.5 GB address-space limit, 10,000 samples run out."""
    import resource

    cpp = _require(CPP_EXAMPLE)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))

    proc = subprocess.run([str(cpp), "--model", str(chexmask_rt.default_model_path()), "--onnxruntime",
                           core.onnxruntime_library(), "--samples", "10000", str(pgm_images[0])],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT, preexec_fn=limited)
    assert proc.returncode == 3, (proc.returncode, proc.stderr[-500:])
    assert proc.stderr.startswith(f"chexmask-rt-cpp: error: {pgm_images[0]}: "), proc.stderr[-500:]
    assert "terminate called" not in proc.stderr


def _one_json(cmd) -> dict:
    out = json.loads(_checked(cmd).stdout)
    return out[0] if isinstance(out, list) else out


def test_one_decode_writes_its_spread_as_null_in_every_json(pgm_images, shared_images):
    """K = 1 without a pooled look: one decode's std is 0 because nothing spreads. Written as 0, a
    consumer ranking images by mean_node_std read these as the surest answers of the run."""
    c, cpp = _require(C_EXAMPLE), _require(CPP_EXAMPLE)
    lib = ["--onnxruntime", core.onnxruntime_library()]
    image = pgm_images[0]
    png = next(p for p in shared_images if p.stem == image.stem)  # the same pixels, for the Python CLI
    for samples, look, measured in (("1", "--single-look", False), ("2", "--single-look", True),
                                    ("1", "--second-look", True)):  # two looks pooled: two decodes spread
        base = ["--model", chexmask_rt.default_model_path(), "--samples", samples, look]
        outputs = {"c": _one_json([c, *base, *lib, image]), "cpp": _one_json([cpp, *base, *lib, image]),
                   "python": _one_json([os.sys.executable, "-m", "chexmask_rt", "predict", *base, "--json", "-",
                                        png])}
        for name, out in outputs.items():
            spreads = (out["landmarks_std"], out["node_uncertainty"], out["scores"]["mean_node_std"])
            if measured:
                assert None not in spreads and out["scores"]["mean_node_std"] > 0, (name, samples, look)
            else:
                assert spreads == (None, None, None), (name, samples, look)
            assert out["scores"]["mean_latent_sigma"] > 0 and len(out["landmarks"]) == 120, name
        assert outputs["c"] == outputs["cpp"]
