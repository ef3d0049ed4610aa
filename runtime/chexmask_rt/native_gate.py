"""Native work that releases the GIL (an engine call or load, an image decode) passes through
:func:`native_call`, so that a fork and the interpreter's exit can wait for what is in flight.

- **fork()**: ONNX Runtime holds mutexes while it runs a session. A process forked at that moment
  inherits them locked, with no thread left to unlock them, and the child's first engine call hangs
  for ever (4 of 100 children in an audit whose parent had two threads predicting).
  ``os.register_at_fork`` makes a fork wait until nothing is in flight and holds new calls back
  until it is done. Between calls a fork is safe: children forked from an idle parent always worked.
- **Exit**: Python 3.11 and 3.12 end a daemon thread that asks for the GIL back during finalization
  by unwinding its stack (``pthread_exit``). Through the noexcept GIL guards of pybind11 (the core)
  and OpenCV (the decoders) that unwind calls ``std::terminate``: the process aborted (exit 134,
  whatever exit code it asked for) in every run whose daemon threads were predicting as it ended.
  At exit (after the non-daemon threads are joined, before finalization) the calls in flight finish
  while their threads can still take the GIL back, and threads other than the main one start no
  more: a new call raises ModelError there (a thread parked instead would hang an exit handler that
  joins it, e.g. a thread pool's).
"""
from __future__ import annotations

import atexit
import importlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ModelError

_state = threading.Condition(threading.Lock())
_in_flight = 0
_forking = False
_exiting = False
_thread = threading.local()  # .inside: this thread is in a native call
EXIT_WAIT_S = 120.0  # the longest an exit waits for calls in flight (a K = 10000 call takes seconds)


@contextmanager
def native_call() -> Iterator[None]:
    """Around native work that releases the GIL: a fork, and the interpreter's exit, wait until it has
    returned. Within a thread's native call another one passes: the outer one already counts (had it
    waited, a fork would wait for the outer call while the inner one waited for the fork)."""
    global _in_flight
    if getattr(_thread, "inside", False):
        yield
        return
    with _state:
        while _forking:
            _state.wait()
        if _exiting and threading.current_thread() is not threading.main_thread():  # only daemon threads now
            raise ModelError("the interpreter is exiting: no engine call or decode starts on another thread")
        _in_flight += 1
    _thread.inside = True
    try:
        yield
    finally:
        _thread.inside = False
        with _state:
            _in_flight -= 1
            _state.notify_all()


@contextmanager
def for_a_waiting_call() -> Iterator[None]:
    """Around work a thread does for another thread that waits for it inside ``native_call``
    (lasting_threads): the work counts as that call. A fork waits for the call, which waits for the
    work: had the work's own native calls waited for the fork, none of the three would end."""
    was = getattr(_thread, "inside", False)
    _thread.inside = True
    try:
        yield
    finally:
        _thread.inside = was


def _before_fork() -> None:
    global _forking
    _state.acquire()          # held across the fork: no call starts until it is done
    _forking = True
    while _in_flight:
        _state.wait()         # lets the calls in flight finish, then holds the lock again


def _after_fork() -> None:
    global _forking
    _forking = False
    _state.notify_all()
    _state.release()


def _after_fork_in_child() -> None:
    # the threads that were waiting to start a call did not come along: nothing is in flight here
    global _in_flight
    _in_flight = 0
    _after_fork()


def _finish_at_exit() -> None:
    global _exiting
    with _state:
        _exiting = True
        _state.wait_for(lambda: _in_flight == 0, timeout=EXIT_WAIT_S)


atexit.register(_finish_at_exit)
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    # Before a fork, hooks run in the reverse order of their registration. Ours must run before the
    # thread pools' hook, which takes the lock every submit takes: else a call in flight that hands its
    # work to a pool (lasting_threads) waits for that lock while the fork waits for the call.
    importlib.import_module("concurrent.futures.thread")  # registers the pools' hook, if not yet done
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork_in_child)
