"""OpenCV's pixel functions run on threads that last.

OpenCV keeps about 0.9 KB for each thread that has run one of its parallel functions (``cvtColor``,
``resize``, ``applyColorMap``) and frees it only when the process ends (opencv/opencv#23252; 876
bytes per thread measured with OpenCV 5.1). A server that starts a thread per request lost that much
for each colour image it segmented and each picture it drew: a gigabyte per million requests, and
``predict_iter``, which starts its decode threads afresh on each call, did the same. Such calls made
on another thread are run here instead, on a small pool whose threads live as long as the process;
the main thread, which lasts too, runs them itself.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .native_gate import for_a_waiting_call, native_call

T = TypeVar("T")
_here = threading.local()  # .lasting: this thread is one of the pool's
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def on_lasting_thread(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` (OpenCV work that releases the GIL), run on a thread that does not end: this one
    if it is the main thread or one of the pool's, else one of the pool's while this one waits. It is
    native work: a fork and the exit wait for it (``native_call``, held by the thread that waits)."""
    with native_call():
        if threading.current_thread() is threading.main_thread() or getattr(_here, "lasting", False):
            return fn(*args)
        try:
            future = _lasting_pool().submit(_for_the_waiting_call, fn, *args)
        except RuntimeError:  # the interpreter is shutting its pools down: the work is still wanted
            return fn(*args)
        return future.result()


def _for_the_waiting_call(fn: Callable[..., T], *args: object) -> T:
    with for_a_waiting_call():
        return fn(*args)


def _lasting_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:  # threads start as work needs them, up to one per core
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="chexmask-opencv",
                                       initializer=_mark_lasting)
        return _pool


def _mark_lasting() -> None:
    _here.lasting = True


def _forget_pool_in_child() -> None:
    # a forked child has none of the pool's threads: a pool that counted them idle would queue work
    # that nothing runs (no fork happens while the pool works: its work counts as its caller's call)
    global _lock, _pool
    _lock = threading.Lock()
    _pool = None


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_pool_in_child)
