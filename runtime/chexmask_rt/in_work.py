"""The images a batch has in work (decoding, or in the engine), kept on disk for the run after it.

A process killed without a word (the kernel's out-of-memory killer, which is how a container's memory
limit ends it, or a decoder's crash) records no failure: the image that killed it was tried again by
every rerun, and a restarted job died on it for ever. So the run keeps ``in-work.json`` in its output
folder while it works and removes it when it ends in any way Python sees (finished, Ctrl-C,
SIGTERM, an error). A file left behind names what a killed run had in work, and the next run
(:meth:`InWork.left`):

- tries those images first, one at a time with nothing else in work, so that a second kill names
  one image;
- records an image that was alone in work when a run was killed in ``errors.csv``
  (:class:`RunKilled`) and goes on with the others. Like every failure it is tried again by the
  run after that.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ChexmaskError
from .whole_files import write_text_whole

IN_WORK_NAME = "in-work.json"


class RunKilled(ChexmaskError):
    """The image that was alone in work when a run was killed without a word (``errors.csv``'s Error)."""


class InWork:
    """This run's images in work, written to ``<out>/in-work.json`` at each change (whole, by rename;
    a few names, so a few hundred microseconds an image)."""

    def __init__(self, out: Path):
        self.path = out / IN_WORK_NAME
        self.images: dict[str, str] = {}  # as this run spells it -> its real path, which the file holds
        self.alone = False

    def left(self, todo: list[str]) -> tuple[list[str], list[str]]:
        """From the file a killed run left, if any: (the images of ``todo`` it had alone in work, which
        the run records as failed; those it had in work among others, which the run tries first, each
        alone). Matched by real path: a rerun may spell INPUT otherwise, as resume allows."""
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
            recorded, alone = {str(i) for i in state["images"]}, bool(state["alone"])
        except (OSError, ValueError, KeyError, TypeError):  # none, or cut short: nothing to go on
            return [], []
        images = [image for image in todo if _real(image) in recorded]
        return (images, []) if alone and len(images) == 1 else ([], images)

    def only(self, image: str) -> None:
        """``image`` alone in work: a kill now names it."""
        self.images, self.alone = {image: _real(image)}, True
        self._save()

    def add(self, image: str) -> None:
        self.images[image] = _real(image)
        self._save()

    def discard(self, image: str) -> None:
        if self.images.pop(image, None) is not None:
            self.alone = False
            self._save()

    def clear(self) -> None:
        """The run ends as Python sees it: nothing it had in work killed it."""
        self.images, self.alone = {}, False
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # the folder went away: the run's own error says so
            pass

    def _save(self) -> None:
        # ASCII with \u escapes: a name that is not UTF-8 (surrogates) comes back as it was
        try:
            write_text_whole(self.path, json.dumps({"alone": self.alone, "images": list(self.images.values())}))
        except OSError:  # a full disk: a safety net must not stop the run, nor leave an old account behind
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass


def _real(image: str) -> str:
    try:
        return os.path.realpath(image)
    except (OSError, ValueError):  # a working folder deleted, a NUL byte: the name as it is
        return image


def killed_reason(image: str) -> str:
    return (f"{image}: a run was killed without an error of its own (out of memory? a container's memory limit "
            "kills so) while this image was the only one in work, after a run was killed with it in work; give "
            "the run more memory or fewer --samples (a rerun tries it again)")
