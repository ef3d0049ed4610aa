"""Training the shipped default model from real shapes and real radiograph textures.

Not part of the installed package: run from the repository root, e.g.
``python -m training.train --help``. The data come from ../shared/data.
"""
