"""This package's version: the installed distribution's, which setup.py reads from the repository's VERSION file."""
from importlib.metadata import PackageNotFoundError, version as _distribution_version

try:
    __version__ = _distribution_version("chexmask-rt")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
