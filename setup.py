"""chexmask-rt: build and packaging.

The runtime package ``chexmask_rt`` (runtime/) needs no torch; the export
toolchain ``chexmask_export`` (export/) comes with the ``export`` extras.
"""
from setuptools import setup

setup(
    name="chexmask-rt",
    version="0.1.0",
    description="Edge inference runtime for HybridGNet chest X-ray landmark segmentation with uncertainty",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["chexmask_rt", "chexmask_rt.backends", "chexmask_export"],
    package_dir={"chexmask_rt": "runtime/chexmask_rt", "chexmask_export": "export/chexmask_export"},
    package_data={
        "chexmask_rt": ["models/*.onnx", "samples/*", "py.typed", "*.pyi"],
        "chexmask_export": ["*.tsv"],
    },
    install_requires=["numpy>=1.24", "onnxruntime>=1.17", "opencv-python-headless>=4.8", "tqdm>=4.60"],
    extras_require={
        # torch 2.13.0 is the CPU wheel these machines carry; newer ones also work
        "export": ["torch>=2.4", "onnx>=1.15", "torch-geometric>=2.5"],
        "test": ["pytest>=7"],
    },
    entry_points={"console_scripts": ["chexmask-rt=chexmask_rt.cli:main"]},
)
