"""Latency, throughput and memory: PyTorch reference vs onnxruntime-Python vs native.

    python -m benchmarks.run [--quick] [--json PATH] [--out benchmarks/results]
    python -m benchmarks.run --throughput [--rounds 8]

--quick times 5 calls per case instead of 20, except the two cases the targets are
computed from (published-1024, batch 1, K = 1 and 50), which keep 20; it writes quick.{json,md}
and quick_latency_vs_k.png, never the full run's latest.{json,md} and latency_vs_k.png.

Models: the published architecture at 1024 (seeded random weights in the published
layout; timing does not depend on their values) and the shipped default model.
Cases: K in {1, 10, 50, 100} at batch 1; batch in {1, 4, 8} at K = 50; each end to
end from a decoded uint8 image to the result in original pixels. Every backend runs
in its own process, so its peak RSS and load time are its own; each case's timed
calls alternate between the processes in rounds, so a shared machine's slow drifts
fall on all backends alike. The honest-baseline section times the reference against
the published flow it stands for (benchmarks/published_flow.py), one call each per
round. A last section compares ONNX Runtime session settings (chexmask_rt.EngineOptions)
on the native backend the same way. Writes one JSON row per (backend, model, samples,
batch), a markdown table with the issue's targets marked PASS/FAIL, and a latency-vs-K plot.
A third section (alone with --throughput) times the native backend's images/s at batch 1, 4
and 8, each chunk as one engine call per image (the default on the CPU) and as one engine call
(EngineOptions.images_per_call), alternating in rounds: the measurement behind the defaults
(chexmask_rt.model.DEFAULT_BATCH, images_per_call 0).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
IMAGE = REPO / "runtime" / "chexmask_rt" / "samples" / "chest_pa_cc0.jpg"
BACKENDS = ("pytorch-reference", "onnxruntime-python", "native")
K_SWEEP = (1, 10, 50, 100)
BATCH_SWEEP = (1, 4, 8)
TARGET_MODEL = "published-1024"  # issue 4's targets are set on this model at batch 1, K = 1 and 50
TARGET_CALLS = 20
# the reference against the published flow (benchmarks/published_flow.py), calls each by --quick
BASELINE_BACKENDS = ("pytorch-reference", "published-flow")
BASELINE_CALLS = {False: 20, True: 10}
# ONNX Runtime session settings compared on the native backend (published-1024, batch 1),
# each against the one before it: chexmask_rt.EngineOptions fields.
SETTINGS = {
    "issue-3 (layout opt. + memory pattern)": {"layout_optimizations": True, "memory_pattern": True},
    "no layout opt., memory pattern": {"layout_optimizations": False, "memory_pattern": True},
    "default (no layout opt., no memory pattern)": {},
    "default, 1 thread": {"threads": 1},
}
# how the throughput table's chunks reach the engine: chexmask_rt.EngineOptions fields
SCHEDULES = {
    "one image per engine call (default)": {},
    "one engine call per chunk": {"images_per_call": max(BATCH_SWEEP)},
}
ENGINE_OPTIONS = {**SETTINGS, **SCHEDULES}


# --- models -------------------------------------------------------------------------------------

def _export_code_digest() -> str:
    """Digest of the export code, so a cached engine is rebuilt when the graph it makes changes."""
    import hashlib

    code = REPO / "export" / "chexmask_export"
    return hashlib.sha256(b"".join(f.read_bytes() for f in sorted(code.glob("*.py")))).hexdigest()[:12]


def published_1024() -> tuple[Path, Path]:
    """A published-layout checkpoint at 1024 with seeded weights, and its engine (cached)."""
    folder, engine = CACHE / "published_1024", CACHE / f"published_1024-{_export_code_digest()}.onnx"
    if not engine.exists():
        for stale in CACHE.glob("published_1024*.onnx"):
            stale.unlink()
        import torch

        from chexmask_export.checkpoint import ModelConfig, load_checkpoint
        from chexmask_export.model import HybridGNet
        from chexmask_export.onnx_export import build_network, export_onnx

        torch.manual_seed(0)
        net = HybridGNet(ModelConfig(inputsize=1024, use_skip=True))
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({f"model.{k}": v for k, v in net.state_dict().items()}, folder / "pytorch_model.bin")
        (folder / "config.json").write_text(json.dumps(net.config.to_dict()))
        ckpt = load_checkpoint(folder)
        export_onnx(build_network(ckpt), engine, checkpoint_sha256=ckpt.sha256, model_name="published-random",
                    model_version="1024")
    return folder, engine


def default_model() -> tuple[Path, Path]:
    from chexmask_rt import default_model_path

    return REPO / "training" / "checkpoints" / "default-v10", default_model_path()


MODELS = {"published-1024": published_1024, "default-512": default_model}


# --- one backend, in its own process -----------------------------------------------------------

def _reference_runner(checkpoint: Path):
    import torch

    from benchmarks.reference import load_reference
    from benchmarks.shared_data import engine_input
    from chexmask_export.checkpoint import load_checkpoint
    from chexmask_rt._core import latent_noise

    net = load_reference(load_checkpoint(checkpoint))
    size = net.config.inputsize

    def run(images, samples):
        eps = torch.from_numpy(latent_noise(samples, net.config.latents))
        out = []
        for image in images:  # the published flow handles one image at a time
            x, frame = engine_input(image, size)
            r = net.sample(torch.from_numpy(x)[None, None], eps)
            out.append((frame.to_original(r["landmarks_mean"]), frame.scale_to_original(r["landmarks_std"])))
        return out
    return run


def _published_flow_runner(checkpoint: Path):
    """The published script's per-image steps (benchmarks/published_flow.py), from the same
    decoded image as the other backends: letterboxed to S x S like theirs, results in original pixels."""
    from benchmarks.published_flow import PublishedFlow
    from chexmask_export.checkpoint import load_checkpoint
    from chexmask_rt._core import letterbox
    from chexmask_rt.image_io import to_gray

    flow = PublishedFlow(load_checkpoint(checkpoint))

    def run(images, samples):
        out = []
        for image in images:
            square, frame = letterbox(to_gray(image), flow.size)
            r = flow(square, samples)
            out.append((frame.to_original(r["mean"] / flow.size), frame.scale_to_original(r["std"] / flow.size)))
        return out
    return run


def _plugin_runner(spec: str, checkpoint: Path):
    """A runner from outside the package, "module:factory" (factory(checkpoint) -> run(images, samples)),
    for calibrations against code that is not committed here (benchmarks/results/baseline.md)."""
    import importlib

    module, factory = spec.split(":")
    return getattr(importlib.import_module(module), factory)(checkpoint)


def _runtime_runner(engine: Path, backend: str, settings: str | None):
    """'native': the package (the core); 'onnxruntime-python': the reference pipeline of tests/reference
    (the exported engine through onnxruntime's Python API, NumPy around it), the Python path of earlier
    releases."""
    if backend == "onnxruntime-python":
        from tests.reference import ReferenceSegmenter

        seg = ReferenceSegmenter(engine, **(ENGINE_OPTIONS[settings] if settings else {}))
    else:
        import chexmask_rt

        options = chexmask_rt.EngineOptions(**ENGINE_OPTIONS[settings]) if settings else None
        seg = chexmask_rt.load(engine, engine_options=options)
    # one engine call per image, like the published flow it is compared with; the second look
    # doubles the work (its cost: python -m benchmarks.framing)
    return lambda images, samples: seg.predict_batch(images, samples=samples, batch_size=len(images),
                                                     second_look=False)


def worker(backend: str, model: str, settings: str | None = None) -> None:
    """Serve timing requests: one line "K BATCH CALLS WARMUP" in, one JSON line out."""
    from chexmask_rt.image_io import read_image

    checkpoint, engine = MODELS[model]()
    image = read_image(IMAGE)
    t0 = time.perf_counter()
    if backend == "pytorch-reference":
        run = _reference_runner(checkpoint)
    elif backend == "published-flow":
        run = _published_flow_runner(checkpoint)
    elif ":" in backend:
        run = _plugin_runner(backend, checkpoint)
    else:
        run = _runtime_runner(engine, backend, settings)
    print(json.dumps({"load_s": time.perf_counter() - t0, "torch": _torch_version()}), flush=True)
    for line in sys.stdin:
        samples, batch, calls, warmup = map(int, line.split())
        images = [image] * batch
        for _ in range(warmup):
            run(images, samples)
        times = []
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(calls):
            t = time.perf_counter()
            run(images, samples)
            times.append((time.perf_counter() - t) * 1000)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        print(json.dumps({"times_ms": times, "peak_rss_mb": peak_rss_mb(), "minor_faults": faults}),
              flush=True)


def _torch_version() -> str | None:
    """The torch this process runs on, where it imported one (the runtime backends do not)."""
    torch = sys.modules.get("torch")
    return torch.__version__ if torch is not None else None


def proc_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (e.g. VmRSS, VmHWM) in MB; None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's own peak resident memory.

    Linux's ru_maxrss survives exec: a worker started by a parent that had grown to 1 GB (a fresh
    clone's parent exports the engines first) reported that 1 GB as its own peak. VmHWM belongs to
    the address space the worker's exec created, so it counts the worker alone.
    """
    peak = proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Worker:
    """One backend (and settings) in its own process, so its peak RSS and load time are its own."""

    def __init__(self, backend: str, model: str, settings: str | None = None, python: str | None = None):
        self.backend, self.model, self.settings = backend, model, settings
        self.proc = subprocess.Popen([python or sys.executable, "-m", "benchmarks.run", "--worker", backend, model]
                                     + (["--settings", settings] if settings else []),
                                     cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self._reply()
        self.load_s, self.torch = hello["load_s"], hello.get("torch")

    def _reply(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise SystemExit(f"{self.backend} on {self.model} failed (exit {self.proc.wait()}); see its stderr above")

    def time(self, samples: int, batch: int, calls: int, warmup: int) -> dict:
        self.proc.stdin.write(f"{samples} {batch} {calls} {warmup}\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def measure(specs: list[tuple], groups: list[list[tuple[int, int, int]]], warmup: int,
            rounds: int | None = None) -> list[dict]:
    """One worker per (backend, model, settings[, python]); each group of cases in rounds that
    alternate between the workers, and between the group's cases within a worker, so the slow
    drifts of a shared machine fall on every backend and on every case of a group alike. A case is
    (samples, batch, timed calls); rounds defaults to min(calls, 4). Groups go in ascending memory,
    so a process's running peak RSS after a group is that group's peak."""
    workers = [Worker(*spec) for spec in specs]
    try:
        return _measure(workers, groups, warmup, rounds)
    finally:
        for w in workers:
            w.close()


def _measure(workers: list[Worker], groups: list[list[tuple[int, int, int]]], warmup: int,
             rounds_wanted: int | None = None) -> list[dict]:
    rows = []
    for group in groups:
        rounds = min(max(calls for _, _, calls in group), rounds_wanted or 4)
        times = {(i, c): [] for i in range(len(workers)) for c in range(len(group))}
        rss: dict[int, float] = {}
        faults = dict.fromkeys(times, 0)
        for r in range(rounds):
            for i, w in enumerate(workers):
                for c, (samples, batch, calls) in enumerate(group):
                    time.sleep(0.05)  # let the previous process's idle threads stop spinning
                    reply = w.time(samples, batch, calls // rounds + (r < calls % rounds), warmup if r == 0 else 0)
                    times[i, c] += reply["times_ms"]
                    rss[i] = reply["peak_rss_mb"]
                    faults[i, c] += reply["minor_faults"]
        for c, (samples, batch, _) in enumerate(group):
            for i, w in enumerate(workers):
                ms = np.array(times[i, c])
                rows.append({"backend": w.backend, "model": w.model,
                             "inputsize": 1024 if w.model == "published-1024" else 512, "samples": samples,
                             "batch": batch, "p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
                             "images_per_s": float(batch / np.median(ms) * 1000), "calls": len(ms),
                             "load_s": w.load_s, "settings": w.settings or "default", "peak_rss_mb": rss[i],
                             "minor_faults_per_call": faults[i, c] / len(ms), "torch": w.torch})
    return rows


def throughput(rounds: int, calls: int, warmup: int) -> list[dict]:
    """Native images/s at K = 50 and batch 1, 4, 8 on both models, each chunk run as the default
    does (one engine call per image on the CPU) and as one engine call.

    One native process per (model, schedule); every round times each (model, schedule, batch) in
    turn, so the machine's drifts fall on all of them alike. Per-image p50 and images/s are medians
    over all rounds; ``vs_batch_1`` is images/s over the default's batch 1 on the same model."""
    cases = [(m, name, b) for m in MODELS for name in SCHEDULES for b in BATCH_SWEEP if b > 1 or not SCHEDULES[name]]
    workers = {(m, name): Worker("native", m, name) for m in MODELS for name in SCHEDULES}
    times: dict[tuple[str, str, int], list[float]] = {case: [] for case in cases}
    try:
        for r in range(rounds):
            for model, name, batch in cases:
                time.sleep(0.05)
                times[model, name, batch] += workers[model, name].time(50, batch, calls, warmup if r == 0 else 0)["times_ms"]
    finally:
        for w in workers.values():
            w.close()
    rows = []
    for (model, name, batch), ms in times.items():
        rows.append({"model": model, "schedule": name, "batch": batch, "samples": 50, "calls": len(ms),
                     "p50_ms_per_image": float(np.median(ms)) / batch,
                     "images_per_s": float(batch / np.median(ms) * 1000)})
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["batch"] == 1)
        row["vs_batch_1"] = row["images_per_s"] / base["images_per_s"]
    return rows


def throughput_markdown(rows: list[dict]) -> str:
    lines = ["Throughput (native, K = 50; the cases alternate in rounds):", "",
             "| model | chunk to the engine | batch | timed calls | p50 ms per image | images/s | vs batch 1 |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['schedule']} | {r['batch']} | {r['calls']} | {r['p50_ms_per_image']:.1f} | "
              f"{r['images_per_s']:.2f} | {r['vs_batch_1']:.2f}x |" for r in rows]
    return "\n".join(lines) + "\n"


def sweep_cases(model: str, calls: int) -> list[list[tuple[int, int, int]]]:
    """Groups of (samples, batch, timed calls) for measure(). The two cases the targets are computed
    from (K = 1 and 50 at batch 1 on TARGET_MODEL) come first, as one group: measured in the same
    rounds, a burst of load cannot fall on one of them alone (a full run once put K = 1 at 287 ms
    against K = 50's 109 ms, and passed "K=50 - K=1 <= 20 ms" with -178 ms). They keep TARGET_CALLS
    timed calls even in --quick mode: a p50 of 5 calls moved K=50 / K=1 by up to 0.2 between runs."""
    if model == TARGET_MODEL:
        target = [(k, 1, max(calls, TARGET_CALLS)) for k in (1, 50)]
        rest = [(k, 1, calls) for k in K_SWEEP if k not in (1, 50)]
    else:
        target, rest = [], [(k, 1, calls) for k in K_SWEEP]
    rest += [(50, b, calls) for b in BATCH_SWEEP if b > 1]
    return ([target] if target else []) + [[case] for case in rest]


# --- machine figures ----------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Measured single-precision matmul rate of this machine (numpy's BLAS, all threads)."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def encoder_gflop(size: int) -> float:
    """Multiply-adds x 2 of the encoder's convolutions and fully connected layers at input S."""
    from chexmask_export.checkpoint import ENCODER_CHANNELS

    chans, total, s = (1,) + ENCODER_CHANNELS, 0.0, size
    for i in range(6):
        cin, cout = chans[i], chans[i + 1]
        total += s * s * 9 * (cin * cout + cout * cout) + (s * s * cin * cout if cin != cout else 0)
        if i < 5:
            s //= 2
    total += 2 * 64 * ENCODER_CHANNELS[-1] * s * s
    return 2 * total / 1e9


# --- report ---------------------------------------------------------------------------------------

def markdown(rows: list[dict], machine: dict) -> str:
    torch_version = next((r["torch"] for r in rows if r["backend"] == "pytorch-reference"), None)
    lines = [f"Machine: {machine['cpu']}, {machine['threads']} threads; measured matmul peak "
             f"{machine['matmul_peak_gflops']:.0f} GFLOP/s; {machine['date']}; the reference on torch "
             f"{torch_version}.", "",
             "| model | backend | K | batch | timed calls | p50 ms | p95 ms | images/s | peak RSS MB (process, up to this case) | load s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['samples']} | {r['batch']} | {r['calls']} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['images_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['load_s']:.2f} |")
    return "\n".join(lines) + "\n"


def _case(rows: list[dict], backend: str, model: str, samples: int = 50, batch: int = 1) -> dict:
    return next(r for r in rows if (r["backend"], r["model"], r["samples"], r["batch"]) == (backend, model, samples, batch))


def summary(rows: list[dict], machine: dict) -> list[str]:
    def p50(backend, model, k=50):
        return _case(rows, backend, model, k)["p50_ms"]

    def rss(backend, model):
        return _case(rows, backend, model)["peak_rss_mb"]

    out = []
    for model in MODELS:
        ref, nat = p50("pytorch-reference", model), p50("native", model)
        size = 1024 if model == "published-1024" else 512
        gflop = encoder_gflop(size)
        out += [f"{model}: native vs pytorch-reference at K=50, batch 1: {ref / nat:.2f}x faster "
                f"({nat:.1f} vs {ref:.1f} ms p50)",
                f"{model}: native K=50 / K=1: {nat / p50('native', model, 1):.3f}",
                f"{model}: native peak RSS / reference at K=50, batch 1: "
                f"{rss('native', model) / rss('pytorch-reference', model):.2f} "
                f"({rss('native', model):.0f} vs {rss('pytorch-reference', model):.0f} MB)",
                f"{model}: encoder {gflop:.2f} GFLOP; native K=1 runs at {gflop / p50('native', model, 1) * 1000:.1f} "
                f"GFLOP/s = {gflop / p50('native', model, 1) * 1000 / machine['matmul_peak_gflops']:.0%} of the "
                f"measured matmul peak"]
    return out


# issue 22: an honest reference (no slower than the published flow), then the native core 8x faster than it
TARGETS = (("pytorch-reference / published-flow latency at K=50 (honest baseline)", "<=", 1.0),
           ("native vs pytorch-reference speed-up at K=50", ">=", 8.0),
           ("native K=50 - K=1 latency (ms)", "<=", 20.0),
           ("native / pytorch-reference peak RSS at K=50", "<=", 0.50))


def targets(rows: list[dict], baseline_rows: list[dict], model: str = TARGET_MODEL) -> list[str]:
    """The issue's targets, each with this run's value and PASS/FAIL. baseline_rows: the reference
    and the published flow timed against each other (alternating, their own processes)."""
    ref, nat, nat1 = (_case(rows, b, model, k) for b, k in (("pytorch-reference", 50), ("native", 50), ("native", 1)))
    honest = _case(baseline_rows, "pytorch-reference", model)["p50_ms"] / _case(baseline_rows, "published-flow",
                                                                                 model)["p50_ms"]
    values = (honest, ref["p50_ms"] / nat["p50_ms"], nat["p50_ms"] - nat1["p50_ms"],
              nat["peak_rss_mb"] / ref["peak_rss_mb"])
    out = []
    for (what, op, bound), value in zip(TARGETS, values):
        ok = value >= bound if op == ">=" else value <= bound
        out.append(f"{what}: {value:.2f} (target {op} {bound:.2f}) {'PASS' if ok else 'FAIL'}")
    return out


def baseline_markdown(rows: list[dict]) -> str:
    """The reference against the published flow it stands for (published-1024, batch 1)."""
    lines = [f"Honest baseline ({rows[0]['model']}, K = {rows[0]['samples']}, batch {rows[0]['batch']}; each in its "
             f"own process, one call each per round, {rows[0]['calls']} rounds):", "",
             "| runner | torch | p50 ms | p95 ms | minor page faults / call | peak RSS MB |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['torch']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['minor_faults_per_call']:.0f} "
              f"| {r['peak_rss_mb']:.0f} |" for r in rows]
    return "\n".join(lines) + "\n"


def settings_markdown(rows: list[dict]) -> str:
    """Native backend on published-1024 at batch 1 under each ONNX Runtime setting."""
    lines = ["Engine settings (native, published-1024, batch 1; each row in its own process):", "",
             "| settings | K=1 p50 ms | K=50 p50 ms | K=50 vs row above | peak RSS MB | RSS vs row above |",
             "|---|---|---|---|---|---|"]
    prev = None
    for name in SETTINGS:
        k1, k50 = (next(r for r in rows if r["settings"] == name and r["samples"] == k) for k in (1, 50))
        rel = (f"{k50['p50_ms'] / prev['p50_ms']:.2f}x", f"{k50['peak_rss_mb'] / prev['peak_rss_mb']:.2f}x") \
            if prev else ("", "")
        lines.append(f"| {name} | {k1['p50_ms']:.1f} | {k50['p50_ms']:.1f} | {rel[0]} | {k50['peak_rss_mb']:.0f} | "
                     f"{rel[1]} |")
        prev = k50
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, machine: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODELS), figsize=(5.5 * len(MODELS), 4))
    for ax, model in zip(np.atleast_1d(axes), MODELS):
        for backend in BACKENDS:
            pts = sorted((r["samples"], r["p50_ms"]) for r in rows
                         if r["model"] == model and r["backend"] == backend and r["batch"] == 1)
            ax.plot(*zip(*pts), marker="o", label=backend)
        ax.set(xlabel="latent samples K", ylabel="p50 latency per image (ms)", title=model, ylim=(0, None))
        ax.legend(fontsize=8)
    fig.suptitle(f"{machine['cpu']}, {machine['threads']} threads", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"5 timed calls per case instead of 20, except the target cases ({TARGET_CALLS} always)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--throughput", action="store_true",
                   help="only the native throughput table (batch 1, 4, 8 in rounds), to results/throughput.{json,md}")
    p.add_argument("--rounds", type=int, default=8, help="rounds of the throughput table (default 8)")
    p.add_argument("--worker", nargs=2, metavar=("BACKEND", "MODEL"), help=argparse.SUPPRESS)
    p.add_argument("--settings", choices=ENGINE_OPTIONS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], args.settings)
        return 0
    calls, warmup = (5, 1) if args.quick else (20, 2)
    for make in MODELS.values():
        make()  # build engines before any timing
    args.out.mkdir(parents=True, exist_ok=True)
    throughput_rows = throughput(args.rounds, 3, warmup)
    if args.throughput:
        (args.out / "throughput.json").write_text(json.dumps(throughput_rows, indent=1))
        (args.out / "throughput.md").write_text(throughput_markdown(throughput_rows))
        print(throughput_markdown(throughput_rows))
        return 0
    machine = {"cpu": cpu_model(), "threads": os.cpu_count(), "matmul_peak_gflops": matmul_peak_gflops(),
               "date": time.strftime("%Y-%m-%d"), "python": platform.python_version()}
    rows = []
    for model in MODELS:
        print(f"{model}: {', '.join(BACKENDS)} ...", file=sys.stderr, flush=True)
        measured = measure([(backend, model, None) for backend in BACKENDS], sweep_cases(model, calls), warmup)
        rows += sorted(measured, key=lambda r: (r["batch"], r["samples"]))  # stable: backends keep their order
    print("honest baseline: pytorch-reference vs published-flow ...", file=sys.stderr, flush=True)
    baseline_rows = measure([(backend, TARGET_MODEL, None) for backend in BASELINE_BACKENDS],
                            [[(50, 1, BASELINE_CALLS[args.quick])]], warmup, rounds=BASELINE_CALLS[args.quick])
    print("engine settings ...", file=sys.stderr, flush=True)
    settings_rows = measure([("native", TARGET_MODEL, name) for name in SETTINGS],
                            [[(1, 1, calls), (50, 1, calls)]], warmup)
    report = {"machine": machine, "rows": rows, "baseline_rows": baseline_rows, "settings_rows": settings_rows,
              "throughput_rows": throughput_rows, "summary": summary(rows, machine),
              "targets": targets(rows, baseline_rows)}
    text = (markdown(rows, machine) + "\n" + "\n".join(f"- {s}" for s in report["summary"]) + "\n\n"
            + baseline_markdown(baseline_rows) + "\n"
            + "Targets (published-1024, batch 1, this run):\n\n" + "\n".join(f"- {s}" for s in report["targets"])
            + "\n\n" + settings_markdown(settings_rows) + "\n" + throughput_markdown(throughput_rows))
    # a quick run never replaces the committed full run's files, which the README quotes
    stem = "quick" if args.quick else "latest"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (args.out / f"{stem}.md").write_text(text)
    plot(rows, args.out / ("quick_latency_vs_k.png" if args.quick else "latency_vs_k.png"), machine)
    if args.json:
        args.json.write_text(json.dumps(rows + settings_rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
