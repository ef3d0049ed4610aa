"""A process forked while engine calls are in flight can still use its parent's engines (fork_gate)."""
import multiprocessing as mp
import os
import threading
import time

import numpy as np
import pytest

from chexmask_rt.fork_gate import engine_call

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")


def _wait_child(pid: int, seconds: float = 20.0) -> int | None:
    """The child's exit code, or None (after killing it) when it has not ended in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def test_fork_waits_for_a_call_in_flight_and_the_child_can_call():
    entered, ended = threading.Event(), threading.Event()

    def call():
        with engine_call():
            entered.set()
            time.sleep(0.3)
            ended.set()

    t = threading.Thread(target=call)
    t.start()
    entered.wait()
    pid = os.fork()
    if pid == 0:  # the child: a new call must start, not wait for a thread that did not come along
        with engine_call():
            pass
        os._exit(0)
    assert ended.is_set()  # fork() returned only after the call in flight had finished
    t.join()
    assert _wait_child(pid) == 0
    with engine_call():  # and the parent goes on
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
