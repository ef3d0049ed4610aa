"""An engine file checks itself when it opens: a damaged file is refused, not run.

Zeroing 4 KB at a random place in the shipped engine left a file that loaded and moved its
landmarks by a pixel or more in 8 of 40 tries (a probe before the seal). Now an export records the SHA-256
of the file it writes (metadata ``chexmask_rt.integrity_sha256``, hashed with that value as 64
'0's), the core checks it before ONNX Runtime parses the bytes, and a caller may pin the whole
file's SHA-256 (``EngineOptions.expected_sha256``); the package pins its shipped engine.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chexmask_rt
from chexmask_rt import EngineOptions, ModelError, model as model_module

from conftest import skip_or_fail_without_native
from toy_engine import sealed_toy_engine as sealed_toy, toy_engine

try:
    from chexmask_rt import core
except ImportError as exc:
    skip_or_fail_without_native(f"chexmask_rt.core: {exc}", allow_module_level=True)

IMAGE = np.random.default_rng(0).integers(0, 256, (100, 80), dtype=np.uint8)
ZEROS = b"0" * 64


def recorded(data: bytes) -> str:
    return {p.key: p.value for p in onnx.load_from_string(data).metadata_props}[core.INTEGRITY_KEY]


def write(tmp_path, data: bytes, name: str = "engine.onnx"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# FIPS 180-4's examples (NIST's published digests), and hashlib on any bytes
@pytest.mark.parametrize("message,digest", [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
])
def test_sha256_gives_the_standards_digests(message, digest):
    assert core.sha256_hex(message) == digest


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_sha256_equals_hashlib_at_every_length(data):
    assert core.sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_the_seal_is_the_files_sha256_with_the_value_as_zeros():
    data = sealed_toy()
    value = recorded(data).encode()
    assert len(value) == 64 and data.count(value) == 1
    assert hashlib.sha256(data.replace(value, ZEROS)).hexdigest() == value.decode()


def test_a_sealed_engine_opens_and_answers_as_before(tmp_path):
    plain = chexmask_rt.load(write(tmp_path, toy_engine(), "plain.onnx")).predict(IMAGE, samples=3)
    sealed = chexmask_rt.load(write(tmp_path, sealed_toy())).predict(IMAGE, samples=3)
    np.testing.assert_array_equal(sealed.landmarks, plain.landmarks)


def test_every_changed_byte_of_a_sealed_engine_is_refused(tmp_path):
    data = sealed_toy()
    value_at = data.index(recorded(data).encode())
    rng = np.random.default_rng(1)
    # every region: the header, the graph, the weights, the key, the value, the last byte
    places = sorted({0, 1, len(data) // 3, len(data) // 2, value_at - 40, value_at - 1, value_at, value_at + 63,
                     len(data) - 1, *rng.integers(0, len(data), 40).tolist()})
    for at in places:
        damaged = bytearray(data)
        damaged[at] ^= 0x04
        path = write(tmp_path, bytes(damaged))
        with pytest.raises(ModelError, match=r"changed after export|integrity_sha256|not a loadable") as caught:
            chexmask_rt.load(path)
        assert str(path) in str(caught.value), at


def test_a_sealed_engine_cut_anywhere_in_its_metadata_is_refused(tmp_path):
    """The metadata is written last, an entry after another: a download cut between two entries is
    still a model ONNX Runtime reads, with entries such as second_look or samples_output missing."""
    data = sealed_toy()
    model = onnx.load_from_string(data)
    assert model.metadata_props[0].key == core.INTEGRITY_KEY
    del model.metadata_props[:]
    graph_end = len(model.SerializeToString())
    assert data.startswith(model.SerializeToString())
    for cut in range(graph_end - 2, len(data)):
        with pytest.raises(ModelError):
            chexmask_rt.load(write(tmp_path, data[:cut]))


def test_a_zeroed_page_of_a_sealed_engine_is_refused_as_changed(tmp_path):
    data = bytearray(sealed_toy())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)  # inside the graph's constants
    with pytest.raises(ModelError, match="changed after export"):
        chexmask_rt.load(write(tmp_path, bytes(data)))


def test_an_engine_edited_after_export_says_how_to_accept_it(tmp_path):
    """An edit (here a description) breaks the seal: refused; without the entry it is an unsealed engine."""
    model = onnx.load_from_string(sealed_toy())
    model.metadata_props.add(key="chexmask_rt.description", value="edited")
    edited = write(tmp_path, model.SerializeToString())
    with pytest.raises(ModelError, match="changed after export .*export it again"):
        chexmask_rt.load(edited)
    seal = {key for key, _ in core.SEAL_ENTRIES}
    kept = [p for p in model.metadata_props if p.key not in seal]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    assert chexmask_rt.load(write(tmp_path, model.SerializeToString(), "unsealed.onnx")).info.description == "edited"


@pytest.mark.parametrize("entries", [{core.INTEGRITY_KEY: "0" * 63}, {"chexmask_rt.integrity": "sha256"}],
                         ids=["a value of 63 digits", "the mark alone"])
def test_a_seal_not_in_the_form_an_export_writes_is_refused(tmp_path, entries):
    """An entry the byte check cannot find (not the export's form, or gone) is not skipped."""
    model = onnx.load_from_string(toy_engine())
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    with pytest.raises(ModelError, match="sealed at export, but its chexmask_rt.integrity_sha256 entry is missing"):
        chexmask_rt.load(write(tmp_path, model.SerializeToString()))


def test_damage_to_the_seals_own_key_cannot_hide_it(tmp_path):
    """A changed byte in the key makes the entry another one, which the byte check does not look for."""
    data = sealed_toy()
    key_at = data.index(core.INTEGRITY_KEY.encode())
    for at in range(key_at - 2, key_at + len(core.INTEGRITY_KEY) + 2):  # its tag, length, key and value tag
        damaged = bytearray(data)
        damaged[at] ^= 0x04
        with pytest.raises(ModelError):
            chexmask_rt.load(write(tmp_path, bytes(damaged)))


def test_a_pinned_sha256_opens_only_that_file(tmp_path):
    data = toy_engine()  # unsealed: the pin alone decides
    path = write(tmp_path, data)
    digest = hashlib.sha256(data).hexdigest()
    for pin in (digest, digest.upper()):
        chexmask_rt.load(path, engine_options=EngineOptions(expected_sha256=pin))
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 1
    other = write(tmp_path, bytes(damaged), "other.onnx")
    with pytest.raises(ModelError, match=f"SHA-256 is {hashlib.sha256(damaged).hexdigest()}, not the expected {digest}"):
        chexmask_rt.load(other, engine_options=EngineOptions(expected_sha256=digest))
    chexmask_rt.load(other)  # nothing pinned or recorded: it opens, as before


@pytest.mark.parametrize("pin", ["abc", "0" * 63, "g" * 64, "0" * 65, " " + "0" * 63])
def test_a_pin_that_is_no_sha256_is_refused_before_any_work(tmp_path, pin):
    with pytest.raises(ModelError, match="expected_sha256 must be 64 hex digits"):
        chexmask_rt.load(write(tmp_path, toy_engine()), engine_options=EngineOptions(expected_sha256=pin))


def test_a_pin_of_another_type_is_named():
    with pytest.raises(ModelError, match="expected_sha256 must be a string or None"):
        chexmask_rt.load(engine_options=EngineOptions(expected_sha256=b"0" * 64))


def test_the_package_lists_its_shipped_engines_sha256():
    assert model_module.default_model_sha256() == hashlib.sha256(chexmask_rt.default_model_path().read_bytes()).hexdigest()


def test_a_damaged_shipped_engine_is_refused(tmp_path, monkeypatch):
    """The shipped engine predates the seal; the package's list pins it."""
    models = tmp_path / "models"
    models.mkdir()
    shipped = chexmask_rt.default_model_path()
    for name in (shipped.name, shipped.name + ".sha256", "default.quality.json"):
        shutil.copy(shipped.with_name(name), models / name)
    monkeypatch.setattr(model_module, "default_model_path", lambda: models / "default.onnx")
    chexmask_rt.load().close()
    data = bytearray((models / "default.onnx").read_bytes())
    data[len(data) // 2:len(data) // 2 + 4096] = bytes(4096)
    (models / "default.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="not the expected"):
        chexmask_rt.load()


def test_a_copy_of_an_unsealed_engine_is_checked_against_the_list_beside_it(tmp_path):
    """A copy of the shipped engine (which records no SHA-256) with its list opened damaged through the
    C and C++ library and load(path): zeroing 4 KB moved the landmarks 2.2 px, "within calibrated
    thresholds". The core now checks an engine that records nothing against <file>.sha256."""
    from test_sdk import C_EXAMPLE, _require

    shipped = chexmask_rt.default_model_path()
    for name in (shipped.name, shipped.name + ".sha256"):
        shutil.copy(shipped.with_name(name), tmp_path / name)
    copy = tmp_path / shipped.name
    assert chexmask_rt.load(copy).integrity == "listed"
    data = bytearray(copy.read_bytes())
    data[1690821:1690821 + 4096] = bytes(4096)
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"not the SHA-256 listed in {re.escape(str(copy))}.sha256"):
        chexmask_rt.load(copy)
    image = tmp_path / "image.pgm"
    image.write_bytes(b"P5\n64 64\n255\n" + bytes(range(64)) * 64)
    proc = subprocess.run([str(_require(C_EXAMPLE)), "--model", str(copy), "--onnxruntime", core.onnxruntime_library(),
                           str(image)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4 and "a damaged or different model file" in proc.stderr, proc.stderr
    (tmp_path / (shipped.name + ".sha256")).write_text("not a digest  default.onnx\n")
    with pytest.raises(ModelError, match="not a SHA-256 list of the engine"):
        chexmask_rt.load(copy)
    (tmp_path / (shipped.name + ".sha256")).unlink()  # without its list a damaged copy is not caught: said as "none"
    assert chexmask_rt.load(copy).integrity == "none"


def test_a_link_to_an_engine_keeps_the_list_and_calibration_beside_the_file_it_names(tmp_path):
    """A deployment's current.onnx -> models/v10.onnx (the C and C++ library, and load(path)) opened a
    damaged copy unchecked and lost the engine's own calibration: the core looked for v10's side files
    beside the link only. They are looked for beside the file it names where none is beside it."""
    import json

    shipped = chexmask_rt.default_model_path()
    (tmp_path / "models").mkdir()
    engine = tmp_path / "models" / "v10.onnx"
    shutil.copy(shipped, engine)
    shutil.copy(f"{shipped}.sha256", f"{engine}.sha256")
    # thresholds the shipped calibration does not hold, so that only the file beside v10 can flag
    sha = chexmask_rt.load(engine).info.checkpoint_sha256
    (tmp_path / "models" / "v10.quality.json").write_text(json.dumps(
        {sha: {"thresholds": {"node_std_1024": 0.5, "mean_latent_sigma": 1e308}}}))
    link = tmp_path / "current.onnx"
    link.symlink_to(engine)
    seg = chexmask_rt.load(link)
    assert seg.integrity == "listed"
    quality = seg.predict(np.full((256, 256), 128, np.uint8), samples=4).quality
    assert quality.flag and quality.calibrated and "> 0.50" in quality.reason, quality
    data = bytearray(engine.read_bytes())
    data[1690821:1690821 + 4096] = bytes(4096)
    engine.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"not the SHA-256 listed in {re.escape(str(engine))}.sha256"):
        chexmask_rt.load(link)


def test_the_c_api_refuses_a_damaged_engine_from_a_file_and_from_memory(tmp_path):
    from test_sdk import C_EXAMPLE, _require

    c = _require(C_EXAMPLE)
    data = bytearray(sealed_toy())
    data[len(data) // 2] ^= 1
    damaged = write(tmp_path, bytes(data))
    image = tmp_path / "image.pgm"
    image.write_bytes(b"P5\n64 64\n255\n" + bytes(range(64)) * 64)
    for memory in ([], ["--from-memory"]):
        proc = subprocess.run([str(c), "--model", str(damaged), "--onnxruntime", core.onnxruntime_library(), *memory,
                               str(image)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 4 and "changed after export" in proc.stderr, (memory, proc.stderr)


def test_info_says_what_each_engine_was_checked_against(tmp_path):
    import json
    import sys

    plain, sealed = write(tmp_path, toy_engine(), "plain.onnx"), write(tmp_path, sealed_toy(), "sealed.onnx")
    assert chexmask_rt.load(plain).integrity == "none" and chexmask_rt.load(sealed).integrity == "recorded"
    shipped = chexmask_rt.load()
    assert shipped.integrity == "pinned" and shipped.engine_sha256 == model_module.default_model_sha256()
    for args, integrity in (([], "pinned"), ([str(sealed)], "recorded"), ([str(plain)], "none")):
        proc = subprocess.run([sys.executable, "-m", "chexmask_rt", "info", *args], capture_output=True, text=True,
                              timeout=120)
        out = json.loads(proc.stdout)
        assert out["integrity"] == integrity, (args, proc.stderr)
        path = args[0] if args else chexmask_rt.default_model_path()
        assert out["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_fifo_where_the_list_belongs_is_refused_not_waited_on(tmp_path):
    """Opening <engine>.sha256 waited for a writer forever when a FIFO was there: every load of the
    engine hung (Python, C and C++ alike). Run in a child, so that a hang fails the test."""
    shipped = chexmask_rt.default_model_path()
    copy = tmp_path / shipped.name
    shutil.copy(shipped, copy)
    os.mkfifo(f"{copy}.sha256")
    proc = subprocess.run([sys.executable, "-c", "import sys, chexmask_rt; chexmask_rt.load(sys.argv[1])", str(copy)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and f"{copy}.sha256: not a regular file" in proc.stderr, proc.stderr[-2000:]
