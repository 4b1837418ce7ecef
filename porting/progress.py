"""One progress display for the whole project, on ``tqdm``.

:class:`Progress` replaces the hand-written progress lines that extraction and training used
to carry. What it shows depends on where it writes (``stderr`` unless told otherwise):

* a terminal: a ``tqdm`` bar with count, rate and ETA, redrawn in place and left on screen
  when it closes (its last state is then the summary);
* anything else (a log file, a pipe, a CI console, pytest's capture): no bar and no redraws,
  only **one summary line** at :meth:`Progress.close` (``desc: done/total unit in 12.3s
  (45.6 unit/s)``), so logs record what ran and how fast without carriage returns;
* ``enabled=False`` (callers pass ``enabled = not quiet and rank == 0``) or ``total <= 0``:
  nothing at all.

The counts are kept in every case, so :meth:`Progress.summary` is available to a caller that
wants to log it itself (e.g. in a JSON record), even when the display is disabled.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

__all__ = ["Progress"]

# Module-level so that tests can replace the clock without touching tqdm's.
_now = time.monotonic


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # closed or detached stream
        return False


class Progress:
    """Progress of ``total`` items: a tqdm bar on a terminal, one summary line elsewhere.

    Use as ``with Progress(n, "query") as bar: ... bar.update(len(batch))`` or call
    :meth:`close` yourself (it is idempotent).
    """

    def __init__(self, total: int, desc: str = "features", enabled: bool = True,
                 stream: TextIO | None = None, unit: str = "img") -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.enabled = bool(enabled) and self.total > 0
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.done = 0
        self.t0 = _now()
        self._t1: float | None = None
        self._postfix: dict[str, str] = {}
        self._closed = False
        self.terminal = self.enabled and _is_terminal(self.stream)
        self._bar: tqdm | None = None
        if self.terminal:
            self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=self.stream,
                             dynamic_ncols=True, mininterval=0.2, leave=True)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, stats: Mapping[str, float | str]) -> None:
        """Show ``stats`` (e.g. the current objective) after the bar and in the summary."""
        self._postfix = {k: f"{v:.4g}" if isinstance(v, float) else str(v)
                         for k, v in stats.items()}
        if self._bar is not None:
            self._bar.set_postfix(self._postfix, refresh=False)

    def elapsed(self) -> float:
        """Seconds since construction (frozen at :meth:`close`)."""
        return (self._t1 if self._t1 is not None else _now()) - self.t0

    def summary(self) -> str:
        """One line: ``desc: done/total unit in 12.3s (45.6 unit/s)`` [+ postfix stats]."""
        dt = self.elapsed()
        rate = f"{self.done / dt:.1f} {self.unit}/s" if dt > 0 else f"? {self.unit}/s"
        text = f"{self.desc}: {self.done}/{self.total} {self.unit} in {dt:.1f}s ({rate})"
        if self._postfix:
            text += " " + " ".join(f"{k}: {v}" for k, v in self._postfix.items())
        return text

    def close(self) -> None:
        """Stop the clock and finish the display: close the bar, or write the summary line."""
        if self._closed:
            return
        self._closed = True
        self._t1 = _now()
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self.stream.write(self.summary() + "\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
