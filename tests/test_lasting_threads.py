"""OpenCV's pixel work runs on threads that last (lasting_threads): a thread per request costs no memory
that stays, the answers are those of the calling thread, and forks still work."""
import os
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from chexmask_rt.image_io import read_image, to_gray
from chexmask_rt.overlay import draw_overlay
from conftest import wait_child

_GROWTH = r"""
import gc, os, sys, threading
import numpy as np
import chexmask_rt
from chexmask_rt.image_io import read_image, to_gray
from chexmask_rt.overlay import draw_overlay

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

rgb = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
result = chexmask_rt.load().predict(rgb, samples=2)
work = {"to_gray": lambda: to_gray(rgb), "read_image": lambda: read_image(sys.argv[1]),
        "draw_overlay": lambda: draw_overlay(rgb, result, max_side=64)}[sys.argv[2]]

failures = []

def run():
    try:
        work()
    except BaseException as exc:  # a call that fails on every thread would keep no memory either
        failures.append(repr(exc))

def on_new_threads(n):
    for _ in range(n):
        t = threading.Thread(target=run)
        t.start()
        t.join()

on_new_threads(500)  # the allocator's pools and the lasting threads settle
gc.collect()
before = resident()
on_new_threads(int(sys.argv[3]))
gc.collect()
print(len(failures), failures[:1], resident() - before)
"""


def _on_a_thread(fn) -> None:
    t = threading.Thread(target=fn)
    t.start()
    t.join()


def _in_time(script: str, *args, hung: str) -> subprocess.CompletedProcess:
    """``script`` run to its end within a minute; a test failure saying ``hung`` when it waits longer."""
    try:
        return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(hung)


@pytest.fixture(scope="module")
def colour_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("colour") / "colour.png"
    rgb = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    assert cv2.imwrite(str(path), rgb)
    return path


@pytest.mark.parametrize("work, threads", [("to_gray", 4000), ("read_image", 8000), ("draw_overlay", 1500)])
def test_a_thread_per_call_keeps_no_memory(colour_png, work, threads):
    """OpenCV kept 0.9 KB for each thread that converted a colour image or drew a picture, until the
    process ended: 3.5 MB for 4000 colour arrays, 8 MB for 8000 colour files, 1.2 MB for 1500 pictures."""
    done = subprocess.run([sys.executable, "-c", _GROWTH, str(colour_png), work, str(threads)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    failed, growth = int(done.stdout.split()[0]), int(done.stdout.split()[-1])
    assert failed == 0, done.stdout
    assert growth < 250 * threads, f"{work}: resident memory grew {growth} bytes over {threads} threads"


def test_answers_from_other_threads_are_those_of_the_main_thread(colour_png, default_segmenter):
    rgb = (np.random.default_rng(2).random((300, 200, 3)) * 65535).astype(np.uint16)
    result = default_segmenter.predict(rgb[..., 0], samples=2)
    here = (to_gray(rgb), read_image(colour_png), draw_overlay(rgb[..., 0], result))
    there: list = []
    _on_a_thread(lambda: there.extend((to_gray(rgb), read_image(colour_png), draw_overlay(rgb[..., 0], result))))
    assert len(there) == 3
    for a, b in zip(here, there):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(here[0], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def test_an_opencv_error_reaches_the_calling_thread():
    from chexmask_rt.lasting_threads import on_lasting_thread

    caught: list = []

    def call():
        try:
            on_lasting_thread(cv2.cvtColor, np.zeros((4, 4, 2), np.uint8), cv2.COLOR_RGB2GRAY)
        except cv2.error as exc:
            caught.append(exc)

    _on_a_thread(call)
    assert len(caught) == 1 and "scn" in str(caught[0])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_forked_child_converts_on_its_own_threads():
    """The child has none of its parent's lasting threads: its pool starts afresh (one that counted the
    parent's idle threads queued the work for no thread, and the child hung)."""
    rgb = (np.random.default_rng(3).random((64, 64, 3)) * 255).astype(np.uint8)
    _on_a_thread(lambda: to_gray(rgb))  # the parent's pool has a thread, idle now
    pid = os.fork()
    if pid == 0:
        out: list = []
        _on_a_thread(lambda: out.append(to_gray(rgb)))
        os._exit(0 if len(out) == 1 and np.array_equal(out[0], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)) else 1)
    assert wait_child(pid) == 0


_FORKS_WHILE_READING = r"""
import os, sys, threading
from chexmask_rt.image_io import read_image
from chexmask_rt.native_gate import native_call

stop, rounds = threading.Event(), [0]

def reading():
    while not stop.is_set():
        with native_call():  # as a caller's own native work around ours
            read_image(sys.argv[1])
        rounds[0] += 1

t = threading.Thread(target=reading)
t.start()
for _ in range(30):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
stop.set()
t.join()
print(rounds[0])
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_forks_while_a_thread_reads_colour_images(colour_png):
    """read_image holds a native call while it hands the colour conversion to a lasting thread: a nested
    call that waited for a fork, or a fork that took the pool's lock before it waited for the calls in
    flight, hung the process (the fork waiting for the call, the call for the fork)."""
    done = _in_time(_FORKS_WHILE_READING, colour_png,
                    hung="a fork and a thread reading colour images waited for each other")
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) > 0


_FORK_WHILE_THE_POOL_WORKS = r"""
import os, threading, time
from chexmask_rt.lasting_threads import on_lasting_thread
from chexmask_rt.native_gate import native_call

forking = threading.Event()

def work():  # on a lasting thread, for a caller that waits in a native call: it makes its own native call
    forking.wait()
    time.sleep(0.3)  # native_gate's hook, which runs after this test's, now waits for the caller
    with native_call():
        return 1

caller = threading.Thread(target=lambda: on_lasting_thread(work))
caller.start()
os.register_at_fork(before=forking.set)  # registered after native_gate's: runs before it
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
caller.join()
print("done")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_native_call_inside_the_pools_work_does_not_wait_for_a_fork():
    """The fork waits for the caller, the caller for the pool's work: that work's own native call waiting
    for the fork hung all three."""
    done = _in_time(_FORK_WHILE_THE_POOL_WORKS, hung="the fork, the caller and the pool's work waited for each other")
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr[-2000:]
