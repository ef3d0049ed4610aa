"""The benchmark tools' own logic: target verdicts, the operator profile, the int8 experiment."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import onnx

import chexmask_rt
from benchmarks import framing, int8_encoder, profile_ops, run, uncertainty_behaviour
from benchmarks.shared_data import DATA
from benchmarks.run import TARGET_CALLS, TARGETS, peak_rss_mb, sweep_cases, targets
from chexmask_rt.image_io import read_image


def _rows(ref50: float, nat1: float, nat50: float, ref_rss: float, nat_rss: float) -> list[dict]:
    def row(backend, k, p50, rss):
        return {"backend": backend, "model": "published-1024", "samples": k, "batch": 1, "p50_ms": p50,
                "peak_rss_mb": rss}
    return [row("pytorch-reference", 50, ref50, ref_rss), row("native", 1, nat1, nat_rss),
            row("native", 50, nat50, nat_rss)]


def _baseline(ref50: float, published50: float) -> list[dict]:
    return [{"backend": b, "model": "published-1024", "samples": 50, "batch": 1, "p50_ms": p50}
            for b, p50 in (("pytorch-reference", ref50), ("published-flow", published50))]


def test_targets_pass_and_fail_on_the_issue_bounds():
    ok = targets(_rows(ref50=700, nat1=70, nat50=85, ref_rss=800, nat_rss=300), _baseline(640, 700))
    assert len(ok) == len(TARGETS) and all(line.endswith("PASS") for line in ok), ok
    assert ok[0].startswith("pytorch-reference / published-flow latency at K=50 (honest baseline): 0.91")
    assert ok[1].startswith("native vs pytorch-reference speed-up at K=50: 8.24")
    assert ok[2].startswith("native K=50 - K=1 latency (ms): 15.00")
    # a reference slower than the published flow, 7x, K=50 25 ms over K=1, RSS 0.6 of the reference: all fail
    bad = targets(_rows(ref50=700, nat1=75, nat50=100, ref_rss=500, nat_rss=300), _baseline(700, 690))
    assert all(line.endswith("FAIL") for line in bad), bad


def _flat(groups):
    return {(k, b): n for group in groups for k, b, n in group}


def test_quick_mode_keeps_full_calls_for_the_target_cases_only():
    quick = _flat(sweep_cases("published-1024", 5))
    assert quick[(1, 1)] == quick[(50, 1)] == TARGET_CALLS >= 20
    assert {n for (k, b), n in quick.items() if (k, b) not in ((1, 1), (50, 1))} == {5}
    assert set(_flat(sweep_cases("default-512", 5)).values()) == {5}
    assert set(_flat(sweep_cases("published-1024", 20)).values()) == {20}
    # every case of the sweep once, on both models
    for model in ("published-1024", "default-512"):
        cases = [(k, b) for group in sweep_cases(model, 5) for k, b, _ in group]
        assert sorted(cases) == sorted([(k, 1) for k in (1, 10, 50, 100)] + [(50, 4), (50, 8)])


class _FakeWorker:
    """Times a call as its K in ms, plus 1000 ms while the machine is "loaded"."""

    def __init__(self, name, clock, loaded_calls):
        self.backend, self.model, self.settings, self.load_s, self.torch = name, "published-1024", None, 0.0, None
        self.clock, self.loaded_calls = clock, loaded_calls

    def time(self, samples, batch, calls, warmup):
        out = []
        for _ in range(warmup + calls):
            self.clock.append((self.backend, samples))
            out.append(samples + (1000 if len(self.clock) <= self.loaded_calls else 0))
        return {"times_ms": out[warmup:], "peak_rss_mb": 1.0, "minor_faults": 0}


def test_the_target_cases_share_their_rounds_so_a_burst_of_load_falls_on_both(monkeypatch):
    """A full run once measured K = 1 during a burst of load and K = 50 after it, and passed
    K=50 - K=1 <= 20 ms with -178 ms. Measured in the same rounds, the burst cannot pick one."""
    monkeypatch.setattr(run.time, "sleep", lambda s: None)
    target = sweep_cases("published-1024", 5)[0]
    assert sorted(k for k, _, _ in target) == [1, 50]

    def native_gap(groups):
        clock: list = []
        workers = [_FakeWorker(name, clock, loaded_calls=20) for name in ("reference", "native")]
        rows = run._measure(workers, groups, warmup=0, rounds_wanted=4)
        native = {r["samples"]: r["p50_ms"] for r in rows if r["backend"] == "native"}
        return native[50] - native[1], clock, rows

    gap, clock, rows = native_gap([target])
    # round by round: each worker runs K = 1, then K = 50, before the next worker
    assert clock[:20] == [("reference", 1)] * 5 + [("reference", 50)] * 5 + [("native", 1)] * 5 + [("native", 50)] * 5
    assert gap == 49  # the burst (the first 20 calls) fell on 5 of each case's 20 calls alike
    assert native_gap([[case] for case in target])[0] < 0  # one case after the other: it fell on K = 1 alone
    assert [(r["backend"], r["samples"], r["calls"]) for r in rows] == [
        ("reference", 1, 20), ("native", 1, 20), ("reference", 50, 20), ("native", 50, 20)]


def test_a_worker_peak_rss_is_its_own_not_its_parents():
    """A fresh clone's benchmark exports the engines before starting its workers; a worker's peak
    must not include what the parent held when it started the worker."""
    import subprocess
    import sys

    held = np.ones((100, 1024, 1024), np.float32)  # 400 MB, touched
    code = "from benchmarks.run import peak_rss_mb; print(peak_rss_mb())"
    repo = Path(__file__).resolve().parents[1]
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=repo).stdout)
    assert held.sum() > 0 and peak_rss_mb() > 400
    assert child < 200, child


def test_operator_profile_accounts_for_the_convolutions(exported):
    ops = profile_ops.profile(exported["skip_256"], chexmask_rt.EngineOptions(), samples=4, runs=2)
    assert ops["Conv"] > 0 and ops["MatMul"] > 0
    assert all(ms >= 0 for ms in ops.values())
    assert "Reorder" not in "".join(ops)  # no layout rewrites unless asked for


def test_int8_variant_quantises_every_convolution(shared_images, tmp_path):
    engine, out = chexmask_rt.default_model_path(), tmp_path / "int8.onnx"
    images = [read_image(p) for p in shared_images[:2]]
    int8_encoder.quantize(engine, out, images, "QDQ")
    graph = onnx.load(out).graph
    convs = sum(n.op_type == "Conv" for n in graph.node)
    weights_dequantised = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    assert convs > 0 and all(n.input[1] in weights_dequantised for n in graph.node if n.op_type == "Conv")
    a = chexmask_rt.load(engine).predict(images[0], samples=4)
    b = chexmask_rt.load(out).predict(images[0], samples=4)
    assert b.model == a.model  # the metadata survives quantisation
    # int8 moves the trained model's landmarks by about a pixel (the experiment reports 0.6-1.8 px
    # mean on the shared images), not by a failure's tens of pixels
    deviation = np.linalg.norm(a.landmarks - b.landmarks, axis=1)
    assert 0 < deviation.mean() < 4.0


def test_ab_of_an_engine_with_itself_shows_no_output_difference(exported, capsys):
    from benchmarks import ab_engines

    engine = str(exported["noskip_256"])
    assert ab_engines.main([engine, engine, "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "largest output difference: 0.00e+00" in out and out.count("K=50 p50") == 2


def test_gpu_check_precisions_keep_the_norms_in_fp32_and_agree_with_fp32():
    """The GPU check's fp16 variants build (on the CPU here) and stay close to the fp32 engine
    on a real image with the shipped (trained) model."""
    import torch

    from benchmarks.gpu_check import PRECISIONS, engine_in
    from benchmarks.run import IMAGE, default_model
    from benchmarks.shared_data import engine_input
    from chexmask_export.model import InstanceNormAffine
    from chexmask_rt._core import latent_noise

    ckpt = default_model()[0]
    image = torch.from_numpy(engine_input(read_image(IMAGE), 512)[0])[None, None]
    eps = torch.from_numpy(latent_noise(4, 64))
    means = {}
    for name, (dtype, fp32_norms) in PRECISIONS.items():
        engine = engine_in(ckpt, torch.device("cpu"), name)
        norms = [m for m in engine.modules() if isinstance(m, InstanceNormAffine)]
        assert norms and all(m.weight.dtype == (torch.float32 if fp32_norms else dtype) for m in norms)
        with torch.no_grad():
            means[name] = engine(image.to(dtype), eps.to(dtype))[0].float()
    for name in ("fp16", "fp16-fp32norm"):
        assert torch.isfinite(means[name]).all()
        assert (means[name] - means["fp32"]).abs().max() * 512 < 2.0  # px in the 512 frame


def test_engine_input_is_the_references_preprocessing(shared_images):
    """What the benchmarks feed engines (the core's preprocessing) equals the reference's, RGB and
    16-bit files included."""
    from benchmarks.shared_data import engine_input
    from reference import preprocess

    deep = np.random.default_rng(5).integers(0, 4096, (300, 200)).astype(np.uint16)
    for image in [read_image(p) for p in shared_images] + [deep]:
        got, frame = engine_input(image, 256)
        want, ref_frame = preprocess(image, 256)
        np.testing.assert_array_equal(got, want)
        assert (frame.side, frame.pad_left, frame.pad_top) == (ref_frame.side, ref_frame.pad_left, ref_frame.pad_top)


def test_the_occlusion_square_is_201_px_of_the_1024_frame_in_original_pixels():
    side = uncertainty_behaviour.occlusion_side
    assert side((1024, 1024)) == 201
    assert side((512, 400)) == 101            # half the frame's scale, made odd
    assert side((1280, 1436)) == 283          # 201 * 1436 / 1024 = 281.9 -> 282 -> odd
    assert side((2048, 1500, 3)) == 403


class _RecordingModel:
    """Stands in for the engine: fixed landmarks, uncertainty 3 on black pixels and 1 elsewhere."""

    def __init__(self, landmarks):
        self.landmarks, self.images = landmarks, []

    def predict(self, image, samples):
        self.images.append(image)
        x, y = np.round(self.landmarks).astype(int).T
        return SimpleNamespace(landmarks=self.landmarks, node_uncertainty=np.where(image[y, x] == 0, 3.0, 1.0))


def test_real_uncertainty_images_are_held_out_one_per_patient():
    """--real N takes validation patients' radiographs only, one per patient, none a training image."""
    from training.real_data import load_split, mhh_images

    split = load_split()
    picked = [path for path, _ in uncertainty_behaviour.real_radiographs(3, DATA)]
    owner = {path: patient for patient, path in mhh_images(set(split["validation_patients"]) | set(split["training_patients"]),
                                                          DATA)}
    patients = [owner[path] for path in picked]
    assert len(picked) == 3 and len(set(patients)) == 3
    assert set(patients) <= set(split["validation_patients"]) and not set(patients) & set(split["training_patients"])


def test_occlusion_blacks_out_a_square_centred_on_each_lung_landmark_and_compares_its_nodes():
    from chexmask_rt.anatomy import organ_slices
    rng = np.random.default_rng(0)
    landmarks = rng.integers(150, 650, (120, 2)).astype(float)  # whole pixels: "inside" is unambiguous
    model = _RecordingModel(landmarks)
    gray = np.full((800, 900), 128, np.uint8)
    rows = uncertainty_behaviour.occlusion_ratios(model, gray, side=101)
    assert len(rows) == 6 and len(model.images) == 7 and model.images[0] is gray
    lungs = set(range(organ_slices()["left_lung"].stop))
    for row, image in zip(rows, model.images[1:]):
        cx, cy = np.round(landmarks[row["node"]]).astype(int)
        ys, xs = np.nonzero(image == 0)
        assert (xs.min(), xs.max(), ys.min(), ys.max()) == (cx - 50, cx + 50, cy - 50, cy + 50)
        inside = [i for i in lungs if max(abs(landmarks[i] - (cx, cy))) <= 50]
        assert row["nodes_inside"] == len(inside) >= 1
        assert row["ratio"] == 3.0  # only lung nodes on black count (heart nodes may lie there too)


@pytest.mark.parametrize("fraction,shape", [(0.1, (240, 320)), (-0.2, (420, 560))])
def test_reframe_moves_every_pixel_by_its_offset(fraction, shape):
    gray = np.zeros((300, 400), np.uint8)
    gray[140, 210] = 255
    image, offset = framing.reframe(gray, fraction)
    assert image.shape == shape
    y, x = np.argwhere(image == 255)[0]
    assert (x, y) == tuple(np.array([210, 140]) + offset)


class _FixedModel:
    """Stands in for the engine: the same pixel landmarks whatever the image."""

    def __init__(self, landmarks):
        self.landmarks = landmarks

    def predict(self, image, samples, second_look=True):
        return SimpleNamespace(landmarks=self.landmarks, mean_node_std=2.0, look_kind="pooled" if second_look else "off")


def test_framing_reaches_each_fill_and_measures_in_the_reframed_1024_frame():
    gray = np.zeros((1000, 800), np.uint8)
    theta = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    anchor = np.stack([400 + 280 * np.cos(theta), 500 + 350 * np.sin(theta)], 1)  # spans 0.7 of the image
    assert framing.lung_fill(anchor, *gray.shape) == pytest.approx(0.7, abs=0.01)
    rows = framing.framing_curve(_FixedModel(anchor), gray, {"single_look": anchor, "second_look": anchor},
                                 truth=anchor + 3.0)
    assert [r["fill"] for r in rows] == pytest.approx(framing.FILLS, abs=0.01)
    for r in rows:
        image, offset = framing.reframe(gray, r["fraction"])
        scale = 1024 / max(image.shape)
        for mode, look in (("single_look", "off"), ("second_look", "pooled")):
            # a model that ignores the framing is off by exactly the crop's offset
            assert r[mode]["to_full_frame_px"] == pytest.approx(np.linalg.norm(offset) * scale, rel=1e-6)
            assert r[mode]["to_reference_px"] == pytest.approx(np.linalg.norm(offset + 3.0) * scale, rel=1e-6)
            assert r[mode]["mean_node_std_1024"] == pytest.approx(2.0 * scale)
            assert r[mode]["look"] == look


def test_second_look_memory_reports_both_settings_from_their_own_processes(capsys):
    from benchmarks import second_look_memory

    second_look_memory.main(["--side", "256"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["one look", "second look"]
    peaks = [float(line.split("peak RSS ")[1].split(" MB")[0]) for line in lines]
    assert all(peak > 50 for peak in peaks)  # a whole Python process with onnxruntime, not a delta


def test_resume_memory_scans_every_row_of_its_synthetic_file(capsys):
    from benchmarks.resume_memory import main

    assert main(["--size-mb", "2"]) == 0  # it checks that the scan found every row it wrote
    out = capsys.readouterr().out
    assert int(re.search(r"MB, (\d+) rows", out).group(1)) > 100 and "peak RSS:" in out
