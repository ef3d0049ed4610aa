"""CSV records as every CSV file of chexmask-rt writes them: rows end in "\\n", and a field holding a
line break of either kind is quoted. csv's writer quotes only the characters of its own line
terminator, so with "\\n" it left a bare CR unquoted, and readers (csv, pandas) split the row there:
an image whose name held a CR made results.csv unreadable to the next run and lost its row in merge."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence


def csv_line(fields: Sequence[object]) -> str:
    """One CSV record, ending in "\\n"."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(fields)  # CR and LF are both quoted
    return buf.getvalue()[:-2] + "\n"


class LineWriter:
    """``csv.writer``'s ``writerow``/``writerows`` over a text file, in :func:`csv_line` records."""

    def __init__(self, f):
        self._f = f

    def writerow(self, fields: Sequence[object]) -> None:
        self._f.write(csv_line(fields))

    def writerows(self, rows: Iterable[Sequence[object]]) -> None:
        for fields in rows:
            self.writerow(fields)
