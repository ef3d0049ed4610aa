"""The default chunk size: single images (measured fastest at both model sizes, README), or the given size."""
import numpy as np

import chexmask_rt
from chexmask_rt.batch import run_batch


class _CountingEngine:
    """The core's engine, recording how many images each predict_batch call takes."""

    def __init__(self, engine, calls: list[int]):
        self._engine, self._calls = engine, calls

    def predict_batch(self, images, *args, **kwargs):
        self._calls.append(len(images))
        return self._engine.predict_batch(images, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._engine, name)


def _engine_calls(segmenter, monkeypatch) -> list[int]:
    """The number of images of every call into the core (one chunk each, its crops included)."""
    calls: list[int] = []
    monkeypatch.setattr(segmenter, "_engine", _CountingEngine(segmenter._engine, calls))
    return calls


def test_predict_batch_iter_and_batch_chunk_by_the_default_or_the_given_size(tmp_path, shared_images, monkeypatch):
    seg = chexmask_rt.load(backend="native")
    calls = _engine_calls(seg, monkeypatch)
    image = np.full((64, 64), 128, np.uint8)
    seg.predict_batch([image] * 10, samples=2, second_look=False)
    assert calls == [1] * 10  # one image per engine call by default
    calls.clear()
    seg.predict_batch([image] * 5, samples=2, second_look=False, batch_size=2)
    assert calls == [2, 2, 1]
    calls.clear()
    assert len(list(seg.predict_iter([image] * 9, samples=2, second_look=False, batch_size=4))) == 9
    assert calls == [4, 4, 1]
    calls.clear()
    run_batch(seg, [str(p) for p in shared_images[:3]], tmp_path / "out", samples=2, second_look=False,
              progress=False)
    assert calls == [1, 1, 1]
