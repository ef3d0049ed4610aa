"""fork() waits for the engine calls in flight, so that a forked child can use its parent's engines.

ONNX Runtime holds mutexes while it runs a session. A process forked at that moment inherits them
locked, with no thread left to unlock them, and the child's first engine call hangs for ever (4 of
100 children in an audit whose parent had two threads predicting). Every engine call and engine
load of the package passes through :func:`engine_call`; ``os.register_at_fork`` makes a fork wait
until none is in flight and holds new ones back until it is done. Between engine calls a fork is
safe: children forked from an idle parent always worked.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_state = threading.Condition(threading.Lock())
_in_flight = 0
_forking = False


@contextmanager
def engine_call() -> Iterator[None]:
    """Around a call into the engine (or its load): a fork waits until it has returned."""
    global _in_flight
    with _state:
        while _forking:
            _state.wait()
        _in_flight += 1
    try:
        yield
    finally:
        with _state:
            _in_flight -= 1
            _state.notify_all()


def _before_fork() -> None:
    global _forking
    _state.acquire()          # held across the fork: no engine call starts until it is done
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


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork_in_child)
