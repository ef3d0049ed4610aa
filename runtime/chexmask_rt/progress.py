"""Progress of long commands: a bar on a terminal; in a log (a file, a pipe), a plain line now and then.

A bar redraws itself with carriage returns, which a log keeps: one "line" of thousands of redraws
(about 1.5 MB an hour for a batch), with any message printed meanwhile glued to its end.
"""
from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL_S = 60.0  # between two lines in a log
_LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} images ({percentage:.0f} %), {rate_fmt}, {elapsed} so far, {remaining} left{postfix}"


class _LogLines(tqdm):
    """tqdm writing whole lines, at most one per ``mininterval`` and one at the end."""

    _last_line = float("-inf")

    def refresh(self, nolock=False, lock_args=None):
        now = self._time()
        if now - self._last_line >= self.mininterval:
            self._last_line = now
            self.display()
        return True

    def display(self, msg=None, pos=None):
        _tolerant(lambda: (self.fp.write(self.__str__() + "\n"), self.fp.flush()))
        return True

    def clear(self, nolock=False):
        pass  # nothing to wipe: a line stays as written

    def close(self):
        if getattr(self, "disable", True):
            return
        self._ema_dt = lambda: None  # the whole run's rate, as tqdm's own last line gives it
        self.display()
        self.disable = True
        self._decr_instances(self)


def progress_bar(total: int, desc: str, enabled: bool = True, initial: int = 0) -> tqdm:
    """A progress bar over ``total`` images on standard error, ``initial`` of them done before it (the
    rate and the time left count this run's alone): tqdm's on a terminal, else :class:`_LogLines`; a
    silent one when not ``enabled``."""
    if not enabled or sys.stderr is None:
        return tqdm(total=total, initial=initial, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit="img", file=sys.stderr)
    return _LogLines(total=total, initial=initial, desc=desc, unit="img", file=sys.stderr,
                     mininterval=LOG_INTERVAL_S, bar_format=_LOG_FORMAT)


# C0 and C1 control characters, DEL among them, as escapes: a file name holding ESC sequences (or a CR)
# would otherwise drive the terminal that shows a message naming it
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def printable(text: str) -> str:
    """``text`` with its control characters escaped, as one line for a terminal or a log."""
    return text.translate(_CONTROLS)


def say(message: str, file=None) -> None:
    """A line on standard error (or ``file``: standard output) that a bar on the terminal does not swallow."""
    _tolerant(lambda: tqdm.write(printable(message), file=file or sys.stderr))


def _tolerant(write) -> None:
    """A line for people: when nobody reads it any more (a closed pipe, a log on a full disk, a closed
    stream) it is lost, and the run, whose results go to files, goes on."""
    try:
        write()
    except (OSError, ValueError):
        pass
