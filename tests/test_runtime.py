"""The chexmask_rt API: determinism, batching, back-projection, result views, no torch."""
import re
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest

import chexmask_rt
from chexmask_rt import core
from chexmask_rt.anatomy import organ_slices
from chexmask_rt.image_io import read_image, to_gray
from chexmask_rt.model import UntrainedModelWarning
from chexmask_rt.metadata import file_sha256
from reference.session import Session

from conftest import FIXTURES, REPO, SHARED


def test_default_model_is_the_shipped_trained_engine():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a trained model loads without any warning
        seg = chexmask_rt.load()
    assert seg.path == chexmask_rt.default_model_path() and seg.path.is_file()
    assert seg.path.stat().st_size <= 25 * 2**20
    assert seg.info.trained is True and seg.model_id == "chexmask-rt-default:10"
    assert seg.info.inputsize == 512 and seg.info.skip is True
    checkpoint = REPO / "training/checkpoints/default-v10"
    assert seg.info.checkpoint_sha256 == file_sha256(checkpoint / "pytorch_model.bin")
    # versions 7-10 ship without landmark offsets: fitted on synthetic renders, they cost 1.5 px on
    # version 7's real outer extent (MODEL_CARD.md); the export adds none and none lies beside the weights
    assert seg.info.landmark_offsets_sha256 == "" and not (checkpoint / "landmark_offsets.json").exists()


def test_default_model_segments_a_real_radiograph(default_segmenter, example1):
    """Regression guard on the shipped model: example 1 against its reference landmarks, in
    the 1024 frame (MODEL_CARD.md reports 10.0 px for version 10 with one engine call, its default; a
    broken engine or pipeline gives hundreds)."""
    r = default_segmenter.predict(example1, samples=50)
    truth = np.load(SHARED / "data/landmarks/wiki_example1_landmarks_original_px.npy")
    frame = core.Letterbox(r.height, r.width)
    error = np.linalg.norm(frame.to_normalised(r.landmarks) - frame.to_normalised(truth), axis=1).mean() * 1024
    assert error < 15.0
    assert 0 < r.mean_node_std < 20 and 0 < r.mean_latent_sigma < 2


def test_untrained_engines_warn(tmp_path):
    from chexmask_export.checkpoint import load_checkpoint
    from chexmask_export.onnx_export import build_network, export_onnx

    ckpt = load_checkpoint(FIXTURES / "noskip_256")
    path = tmp_path / "random.onnx"
    export_onnx(build_network(ckpt), path, checkpoint_sha256=ckpt.sha256, trained=False)
    with pytest.warns(UntrainedModelWarning, match="UNTRAINED"):
        chexmask_rt.load(path)


def test_same_image_gives_bit_identical_results(default_segmenter, example1):
    a = default_segmenter.predict(example1, samples=20, seed=5)
    b = default_segmenter.predict(read_image(example1), samples=20, seed=5)
    for key in ("landmarks", "landmarks_std", "landmarks_mu", "latent_mu", "latent_sigma"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    c = default_segmenter.predict(example1, samples=20, seed=6)
    assert not np.array_equal(a.landmarks_std, c.landmarks_std)
    # one engine call's decode at mu needs no noise (a second look's crop follows the noisy mean)
    one = [default_segmenter.predict(example1, samples=20, seed=s, second_look=False) for s in (5, 6)]
    np.testing.assert_array_equal(one[0].landmarks_mu, one[1].landmarks_mu)


def test_results_are_the_engine_outputs_in_original_pixels(default_segmenter, example1):
    """Back-projection checked independently: run the engine by hand (onnxruntime's Python API) on the
    core's input and undo the letterbox."""
    image = read_image(example1)  # 786 wide, 899 high: padded 56 px left
    r = default_segmenter.predict(image, samples=8, seed=2, second_look=False)
    tensor, *_ = core.preprocess(to_gray(image), default_segmenter.inputsize)
    raw = Session(default_segmenter.path).run(tensor[None, None], core.latent_noise(8, 64, 2))
    f64 = lambda a: a[0].astype(np.float64)  # noqa: E731
    np.testing.assert_allclose(r.landmarks, f64(raw["landmarks_mean"]) * 899 - [56, 0], rtol=1e-12)
    np.testing.assert_allclose(r.landmarks_mu, f64(raw["landmarks_mu"]) * 899 - [56, 0], rtol=1e-12)
    np.testing.assert_allclose(r.landmarks_std, f64(raw["landmarks_std"]) * 899, rtol=1e-12)
    np.testing.assert_allclose(r.latent_sigma, raw["latent_sigma"][0])
    assert (r.height, r.width, r.samples, r.seed) == (899, 786, 8, 2)


def test_uncertainty_fields(default_segmenter, example1):
    r = default_segmenter.predict(example1, samples=10)
    assert r.landmarks.shape == r.landmarks_std.shape == r.landmarks_mu.shape == (120, 2)
    assert r.latent_mu.shape == r.latent_sigma.shape == (64,)
    np.testing.assert_allclose(r.node_uncertainty, (r.landmarks_std[:, 0] + r.landmarks_std[:, 1]) / 2)
    assert r.mean_node_std == pytest.approx(r.node_uncertainty.mean())
    assert r.mean_latent_sigma == pytest.approx(r.latent_sigma.mean())
    views = organ_slices()
    np.testing.assert_array_equal(r.right_lung, r.landmarks[views["right_lung"]])
    np.testing.assert_array_equal(r.left_lung, r.landmarks[views["left_lung"]])
    np.testing.assert_array_equal(r.heart, r.landmarks[views["heart"]])
    assert len(r.right_lung) == 44 and len(r.left_lung) == 50 and len(r.heart) == 26
    d = r.to_dict()
    assert set(d) >= {"image", "height", "width", "samples", "model", "landmarks", "landmarks_std", "landmarks_mu",
                      "latent_mu", "latent_sigma", "node_uncertainty", "scores"}
    assert d["scores"] == {"mean_node_std": r.mean_node_std, "mean_latent_sigma": r.mean_latent_sigma}


def test_single_sample_has_zero_std(default_segmenter, example1):
    r = default_segmenter.predict(example1, samples=1, second_look=False)
    assert np.all(r.landmarks_std == 0) and r.mean_node_std == 0
    # two looks of one sample each: the std of two points is half their distance
    two = default_segmenter.predict(example1, samples=1, second_look=True)
    assert two.second_look.look == "pooled" and two.mean_node_std > 0


def test_batch_equals_single_calls(default_segmenter, shared_images):
    batch = default_segmenter.predict_batch(shared_images, samples=6, seed=1, batch_size=3)
    assert [r.image for r in batch] == [str(p) for p in shared_images]
    for path, r in zip(shared_images, batch):
        alone = default_segmenter.predict(path, samples=6, seed=1)
        # on the CPU each image of a chunk is its own engine call: its answer alone, bit for bit
        np.testing.assert_array_equal(r.landmarks, alone.landmarks)
        np.testing.assert_array_equal(r.landmarks_std, alone.landmarks_std)
        assert (r.height, r.width) == (alone.height, alone.width)


@pytest.mark.parametrize("samples", [0, -3, 10**6, 2.5, True])
def test_bad_sample_counts(default_segmenter, example1, samples):
    with pytest.raises(chexmask_rt.InputError, match="samples"):
        default_segmenter.predict(example1, samples=samples)


def test_runtime_does_not_import_torch(example1):
    code = ("import sys, warnings, chexmask_rt; warnings.simplefilter('ignore'); "
            f"chexmask_rt.load().predict({str(example1)!r}, samples=3); "
            "bad = [m for m in ('torch', 'torch_geometric', 'onnx', 'chexmask_export') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_segmenter_refuses_pickling_and_says_how_to_give_each_worker_one(default_segmenter):
    """Pool.map(seg.predict, files) pickles the Segmenter; the error named the core's _core.Engine, a class
    users never see, and nothing said to open one per worker."""
    import copy
    import pickle

    for attempt in (pickle.dumps, copy.deepcopy, copy.copy, lambda s: pickle.dumps(s.predict)):
        with pytest.raises(TypeError, match=r"a Segmenter holds an open engine and cannot be pickled or copied: "
                                            r"open one in each worker process with chexmask_rt.load\(\)"):
            attempt(default_segmenter)


def test_a_segmenters_model_information_travels_to_other_processes(default_segmenter):
    """seg.info (what a worker reports with its results) could not be pickled or copied."""
    import copy
    import pickle

    info = default_segmenter.info
    fields = [name for name in dir(info) if not name.startswith("_")]
    assert {"id", "organs", "metadata", "inputsize", "checkpoint_sha256"} <= set(fields)
    for travelled in (pickle.loads(pickle.dumps(info)), copy.deepcopy(info), copy.copy(info)):
        assert type(travelled) is type(info)
        assert {f: getattr(travelled, f) for f in fields} == {f: getattr(info, f) for f in fields}
        assert travelled == info and hash(travelled) == hash(info)  # a worker's report checked against ours


def test_model_information_compares_and_shows_itself(default_segmenter, tmp_path):
    """Two loads of one engine gave infos that compared unequal (identity), and a notebook showed
    `<chexmask_rt._core.ModelInfo object at 0x...>`."""
    import chexmask_rt
    from toy_engine import write_toy_engine

    info = default_segmenter.info
    again = chexmask_rt.load().info
    assert again == info and hash(again) == hash(info) and not (again != info)
    other = chexmask_rt.load(write_toy_engine(tmp_path / "toy.onnx")).info
    assert other != info and info != "chexmask-rt-default:10"
    shown = repr(info)
    assert shown.startswith(f"ModelInfo(id='{info.id}', inputsize={info.inputsize}, latents={info.latents}, ")
    assert f"checkpoint_sha256='{info.checkpoint_sha256[:12]}" in shown and "0x" not in shown


def test_a_results_numbers_cannot_be_changed_through_it(default_segmenter, example1):
    """Frozen held for the fields, not their arrays: centring r.right_lung in place for a plot (a view of
    landmarks) moved the landmarks 470 px and changed the CTR, the masks and the hash."""
    import copy
    import dataclasses
    import pickle

    r = default_segmenter.predict(example1, samples=3)
    before = r.landmarks.copy()
    lung = r.right_lung
    with pytest.raises(ValueError, match="read-only"):
        lung -= lung.mean(axis=0)
    with pytest.raises(ValueError, match="read-only"):
        r.landmarks_std[0, 0] = 0
    with pytest.raises(ValueError, match="read-only"):  # computed, but read-only as the README says of them all
        r.node_uncertainty[0] = 0
    np.testing.assert_array_equal(r.landmarks, before)
    for other in (pickle.loads(pickle.dumps(r)), copy.copy(r), copy.deepcopy(r)):
        assert other == r and not other.landmarks.flags.writeable
    mine = before + 1.0
    moved = dataclasses.replace(r, landmarks=mine)
    assert not moved.landmarks.flags.writeable and mine.flags.writeable  # the caller's own array stays theirs


def test_a_result_and_a_segmenter_read_in_one_line(default_segmenter, example1):
    """repr(result) was 385 lines of numbers in a notebook; repr(segmenter) an address."""
    r = default_segmenter.predict(example1, samples=3)
    text = repr(r)
    assert "\n" not in text and len(text) < 400
    assert text.startswith(f"Result(image={str(example1)!r}, {r.width}x{r.height}, 120 landmarks, samples=3")
    assert f"mean_node_std={r.mean_node_std:.2f} px" in text and ("FLAGGED" if r.quality.flag else "not flagged") in text
    assert repr(default_segmenter) == (f"Segmenter({default_segmenter.model_id!r}, path={str(default_segmenter.path)!r}, "
                                       f"backend='native', providers={default_segmenter.providers!r})")


def test_what_people_pass_instead_of_a_path_is_refused_with_how_to_pass_it(default_segmenter, example1, tmp_path):
    import io

    from PIL import Image

    from chexmask_rt.errors import InputError

    hints = {"write the file's bytes to a file": [example1.read_bytes(), io.BytesIO(example1.read_bytes())],
             "np.asarray(image.convert('L'))": [Image.new("L", (64, 64))],
             # a bytes path was told to write "the file's bytes" to a file
             "it names a file: pass the path as text, os.fsdecode(path)": [bytes(example1)]}
    for hint, items in hints.items():
        for item in items:
            with pytest.raises(InputError, match=f"got {type(item).__name__}; .*{re.escape(hint)}"):
                default_segmenter.predict(item, samples=2)
    with pytest.raises(InputError, match=r"image / 255 for 8-bit levels"):  # it advised np.clip: all white
        default_segmenter.predict(np.full((64, 64), 200.0, np.float32), samples=2)


def test_a_nearly_black_8_bit_array_warns_at_the_callers_line(default_segmenter, example1):
    """A 16-bit PNG read by cv2.imread without IMREAD_UNCHANGED arrives as 8 bits of 0..15: landmarks 7 px off
    on average, unflagged, and nothing said so."""
    gray = to_gray(read_image(example1))
    gray = (gray // 16) if gray.dtype == np.uint8 else (gray >> 12).astype(np.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        default_segmenter.predict(gray, samples=2); line = sys._getframe().f_lineno  # noqa: E702
        default_segmenter.predict(to_gray(read_image(example1)), samples=2)
    dark = [w for w in caught if "nearly black" in str(w.message)]
    assert len(dark) == 1 and dark[0].filename == __file__ and dark[0].lineno == line
    assert "IMREAD_UNCHANGED" in str(dark[0].message)
    from chexmask_rt.errors import InputError

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an array refused for its size gets that error alone
        with pytest.raises(InputError, match="at least 32x32"):
            default_segmenter.predict(np.zeros((8, 8), np.uint8), samples=2)


def test_a_dark_file_read_by_the_package_gives_no_array_warning(tmp_path, default_segmenter, example1):
    """batch and predict_iter decode files to arrays and hand those on: a dark 8-bit PNG got the warning meant
    for a caller's array, naming no file and advising to "pass the file's path", which the caller had done.
    predict of the path said nothing. A caller's own dark array still warns once, in predict_iter too."""
    from chexmask_rt.batch import run_batch

    dark = (to_gray(read_image(example1)) // 6).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "dark.png"), dark)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(default_segmenter.predict_iter([str(tmp_path / "dark.png")], samples=2))
        run_batch(default_segmenter, [str(tmp_path / "dark.png")], tmp_path / "out", samples=2, progress=False)
        assert not [w for w in caught if "nearly black" in str(w.message)]
        list(default_segmenter.predict_iter([dark], samples=2))
    assert len([w for w in caught if "nearly black" in str(w.message)]) == 1


def test_the_overlay_is_drawn_over_a_path_as_over_its_pixels(default_segmenter, example1):
    """draw_overlay(path, r) failed with a bare IndexError."""
    from chexmask_rt.overlay import draw_overlay

    r = default_segmenter.predict(example1, samples=2)
    np.testing.assert_array_equal(draw_overlay(example1, r), draw_overlay(read_image(example1), r))
    np.testing.assert_array_equal(draw_overlay(str(example1), r), draw_overlay(read_image(example1), r))


CLOSE_FREES = """
import ctypes, gc, json, sys
import chexmask_rt
def rss_mb():
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
seg = chexmask_rt.load(threads=1)
idle = rss_mb()
seg.predict(sys.argv[1], samples=1000)  # ONNX Runtime's pool grows by a few hundred MB and keeps them
busy = rss_mb()
seg.close()
gc.collect()
print(json.dumps({"idle": idle, "busy": busy, "closed": rss_mb(), "id": seg.info.id, "repr": repr(seg)}))
"""


def test_close_frees_the_engine_and_later_calls_say_so(shared_images, default_segmenter):
    """A Segmenter had no close() nor a with-block: the engine, and the few hundred MB of ONNX Runtime's
    pool after a large call, stayed until garbage collection (and the info object kept it alive even then)."""
    import json

    from chexmask_rt.errors import ModelError

    png = next(p for p in shared_images if p.suffix == ".png")
    out = json.loads(subprocess.run([sys.executable, "-c", CLOSE_FREES, str(png)], capture_output=True, text=True,
                                    timeout=300, check=True).stdout)
    assert out["busy"] - out["idle"] > 150, out  # the pool the call grew
    assert out["closed"] < out["idle"] + 0.25 * (out["busy"] - out["idle"]), out  # given back on close
    assert out["id"] == default_segmenter.model_id and out["repr"].startswith("Segmenter(")
    with chexmask_rt.load() as seg:
        assert seg.predict(png, samples=2).samples == 2
    with pytest.raises(ModelError, match="this Segmenter was closed"):
        seg.predict(png, samples=2)
    assert {"Quality", "Measures"} <= set(chexmask_rt.__all__)  # the types predict's results hold


def test_the_packages_lazy_names_are_its_public_names_for_every_reader():
    """The public names load on first use (__getattr__): the table of their modules, __all__ and the
    imports type checkers read must name the same things, or `from chexmask_rt import *` fails on one
    and type checkers miss another."""
    import ast

    tree = ast.parse(open(chexmask_rt.__file__).read())
    guard = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    typed = {alias.name: node.module for node in guard.body if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    assert typed == chexmask_rt._HOMES and set(chexmask_rt.__all__) == set(typed)
    for name, home in typed.items():
        assert getattr(chexmask_rt, name) is getattr(__import__(f"chexmask_rt.{home}", fromlist=[name]), name)
    namespace: dict = {}
    exec("from chexmask_rt import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(chexmask_rt.__all__)
    with pytest.raises(AttributeError, match="module 'chexmask_rt' has no attribute 'laod'"):
        chexmask_rt.laod
