"""The native core, ``chexmask_rt._core``: the pipeline itself (C++), which the package needs.

Everything that reads pixels into the engine and answers back (preprocessing, latent noise, the
engine call, back-projection, the second look, the non-finite check, the reliability flag and the
engine metadata's validation) runs there; this module only finds it, and the ONNX Runtime library
it runs.
"""
from __future__ import annotations

import glob
import importlib.util
import os

from .devices import MISSING_ONNXRUNTIME
from .errors import ModelError

try:
    from . import _core
except ImportError as exc:  # not built, or built against another Python or ABI
    raise ImportError(f"the native core chexmask_rt._core cannot be loaded ({type(exc).__name__}: {exc}); "
                      "build it with 'pip install .'") from exc


def __getattr__(name: str):
    """The core's names (``_core.pyi``): ``core.Engine``, ``core.RESULT_FIELDS``, ``core.preprocess`` ..."""
    return getattr(_core, name)


def onnxruntime_distribution() -> tuple[str, str] | None:
    """(name, version) of the installed distribution that provides the ``onnxruntime`` package whose
    library the core runs: onnxruntime, onnxruntime-gpu or onnxruntime-openvino; None without one.
    Read from the package metadata: importing onnxruntime's Python module is not needed for it."""
    import importlib.metadata as metadata

    for name in metadata.packages_distributions().get("onnxruntime", []):
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:  # a stale record of an uninstalled one
            continue
    return None


def onnxruntime_library() -> str:
    """libonnxruntime inside the installed onnxruntime Python package, which the core runs."""
    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):  # e.g. blocked in sys.modules
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(MISSING_ONNXRUNTIME)
    capi = os.path.join(list(spec.submodule_search_locations)[0], "capi")
    found = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so.1*")) + glob.glob(os.path.join(capi, "onnxruntime.dll")))
    if not found:
        raise ModelError(f"no libonnxruntime.so.1* in {capi}; reinstall onnxruntime")
    return found[0]
