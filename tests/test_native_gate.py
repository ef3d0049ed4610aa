"""A process forked while engine calls are in flight can still use its parent's engines, and one that ends
while daemon threads predict exits as it asked (native_gate)."""
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from chexmask_rt.native_gate import native_call
from conftest import wait_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")


def test_fork_waits_for_a_call_in_flight_and_the_child_can_call():
    entered, ended = threading.Event(), threading.Event()

    def call():
        with native_call():
            entered.set()
            time.sleep(0.3)
            ended.set()

    t = threading.Thread(target=call)
    t.start()
    entered.wait()
    pid = os.fork()
    if pid == 0:  # the child: a new call must start, not wait for a thread that did not come along
        with native_call():
            pass
        os._exit(0)
    assert ended.is_set()  # fork() returned only after the call in flight had finished
    t.join()
    assert wait_child(pid) == 0
    with native_call():  # and the parent goes on
        pass


def _predict_in_child(seg, image, queue):
    queue.put(seg.predict(image, samples=5).landmarks)


def test_children_forked_from_a_busy_parent_predict(default_segmenter, example1):
    """Without the gate, 4-5 of 100 children forked while two threads predicted hung for ever."""
    want = default_segmenter.predict(example1, samples=5).landmarks
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            default_segmenter.predict(example1, samples=5)

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    ctx, queue, hung = mp.get_context("fork"), mp.get_context("fork").Queue(), 0
    try:
        for _ in range(12):
            p = ctx.Process(target=_predict_in_child, args=(default_segmenter, example1, queue))
            p.start()
            p.join(20)
            if p.is_alive():
                hung += 1
                p.kill()
                p.join()
            else:
                np.testing.assert_array_equal(queue.get(timeout=5), want)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert hung == 0


def _exits_as_asked(script: str, *args, runs: int = 6, timeout: float = 300) -> None:
    """``script`` run ``runs`` times ends with the exit code it asks for (3), never aborted by a thread
    unwound through a noexcept guard."""
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 3 and "terminate called" not in proc.stderr, (proc.returncode, proc.stderr[-2000:])


DAEMONS_AT_EXIT = """
import sys, threading, time
import chexmask_rt
seg = chexmask_rt.load(threads=1)
image = sys.argv[1]
def predict_for_ever(use_iter):
    while True:
        if use_iter:
            for _ in seg.predict_iter([image, image], samples=20):
                pass
        else:
            seg.predict(image, samples=50)
for i in range(3):
    threading.Thread(target=predict_for_ever, args=(i == 2,), daemon=True).start()
time.sleep(0.4)
sys.exit(3)
"""


def test_a_program_that_ends_while_daemon_threads_predict_exits_as_it_asked(shared_images):
    """It aborted (exit 134, 'terminate called without an active exception') in every run: Python ended the
    daemon threads that asked for the GIL back during finalization by unwinding them through the core's
    and OpenCV's noexcept GIL guards."""
    png = next(p for p in shared_images if p.suffix == ".png")
    _exits_as_asked(DAEMONS_AT_EXIT, png)


DRAWING_AT_EXIT = """
import dataclasses, sys, tempfile, threading, time
import chexmask_rt
from chexmask_rt.csv_output import write_masks
from chexmask_rt.overlay import draw_overlay
seg = chexmask_rt.load(threads=1)
r = seg.predict(sys.argv[1], samples=5)
big = dataclasses.replace(r, height=3000, width=3000, landmarks=r.landmarks * 3000 / max(r.height, r.width))
out = tempfile.mkdtemp()
def work(what):  # organ masks, mask PNGs and overlays: OpenCV and the core's fill release the GIL
    while True:
        if what == 0:
            big.organ_masks()
        elif what == 1:
            write_masks(out, "m", r)
        else:
            draw_overlay(sys.argv[1], r)
for i in range(3):
    threading.Thread(target=work, args=(i,), daemon=True).start()
time.sleep(0.5)
sys.exit(3)
"""


def test_a_program_that_ends_while_daemon_threads_draw_exits_as_it_asked(shared_images):
    """Organ masks and overlays in daemon threads at exit: 5 of 6 runs segfaulted or aborted (exit 139, 134)
    before their native work went through native_call too."""
    png = next(p for p in shared_images if p.suffix == ".png")
    _exits_as_asked(DRAWING_AT_EXIT, png)


JOINED_AT_EXIT = """
import atexit, sys, threading, time
atexit.register(lambda: worker.join())  # registered before chexmask_rt: runs after the package's exit hook
import chexmask_rt
seg = chexmask_rt.load(threads=1)
def work():  # predicts until a call is refused, as a worker would until its pool stops it
    while True:
        try:
            seg.predict(sys.argv[1], samples=20)
        except chexmask_rt.ModelError as exc:
            print(exc)
            return
worker = threading.Thread(target=work, daemon=True)
worker.start()
time.sleep(0.4)
sys.exit(3)
"""


def test_an_exit_handler_that_joins_a_predicting_thread_still_ends(shared_images):
    """The exit hook must not park a daemon thread's next call for good: an exit handler that joins it
    (a thread pool's, one of the program's) would then wait for ever."""
    png = next(p for p in shared_images if p.suffix == ".png")
    proc = subprocess.run([sys.executable, "-c", JOINED_AT_EXIT, str(png)], capture_output=True, text=True,
                          timeout=120)  # a parked thread: the join waits for ever, and this times out
    assert proc.returncode == 3 and "terminate called" not in proc.stderr, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout == "the interpreter is exiting: no engine call or decode starts on another thread\n"


OVERLAYS_AT_EXIT = """
import sys, threading, time
import numpy as np
import chexmask_rt
from chexmask_rt.image_io import read_image, to_gray
from chexmask_rt.overlay import draw_overlay, overlay_png
seg = chexmask_rt.load(threads=1)
gray = to_gray(read_image(sys.argv[1]))
r = seg.predict(gray, samples=5)
def work(what):  # drawing and encoding alone: no decode, whose gate would hide the drawing's
    while True:
        (draw_overlay if what else overlay_png)(gray, r)
for i in range(4):
    threading.Thread(target=work, args=(i % 2,), daemon=True).start()
time.sleep(0.5)
sys.exit(3)
"""


def test_a_program_that_ends_while_daemon_threads_draw_overlays_of_arrays_exits_as_it_asked(shared_images):
    """An overlay of pixels draws and encodes with OpenCV outside any decode: it too waits for the exit."""
    png = next(p for p in shared_images if p.suffix == ".png")
    _exits_as_asked(OVERLAYS_AT_EXIT, png)


COLOUR_AT_EXIT = r"""
import sys, threading, time
import numpy as np
import chexmask_rt
from chexmask_rt.image_io import to_gray
seg = chexmask_rt.load(threads=1)
rgb = (np.random.default_rng(4).random((1500, 1200, 3)) * 255).astype(np.uint8)
def work(what):  # the conversions wait on lasting threads, which the exit joins
    while True:
        seg.predict(rgb, samples=2) if what else to_gray(rgb)
for i in range(4):
    threading.Thread(target=work, args=(i % 2,), daemon=True).start()
time.sleep(0.5)
sys.exit(3)
"""


def test_a_program_that_ends_while_daemon_threads_convert_colour_exits_as_it_asked():
    """Colour conversions wait on lasting threads (lasting_threads), which the exit joins first."""
    _exits_as_asked(COLOUR_AT_EXIT, runs=4, timeout=120)
