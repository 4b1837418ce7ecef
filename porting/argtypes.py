"""Typed command-line values shared by every verb: a nonsense number (NaN, a negative count,
a quality of 101) is refused by argparse itself, as usage (one line, exit 2), instead of
giving a silently wrong result later.

Each factory returns an argparse ``type=`` callable; its name appears in argparse's message
("invalid finite number value: 'nan'"), so each says what it expects.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["finite_float", "positive_float", "nonnegative_float", "float_in", "int_in",
           "positive_int", "nonnegative_int"]


def _named(fn: Callable[[str], object], name: str) -> Callable[[str], object]:
    fn.__name__ = name  # argparse says "invalid <name> value: ..."
    return fn


def float_in(low: float | None = None, high: float | None = None, *,
             low_open: bool = False, high_open: bool = False,
             name: str | None = None) -> Callable[[str], float]:
    """A finite float in ``[low, high]`` (an open end with ``low_open`` / ``high_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(
                f"expected a number {'>' if low_open else '>='} {low:g}, got {text!r}")
        if high is not None and (value >= high if high_open else value > high):
            raise argparse.ArgumentTypeError(
                f"expected a number {'<' if high_open else '<='} {high:g}, got {text!r}")
        return value
    return _named(parse, name or "number")  # type: ignore[return-value]


def int_in(low: int | None = None, high: int | None = None, *,
           name: str | None = None) -> Callable[[str], int]:
    """An integer in ``[low, high]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (f"from {low} to {high}" if low is not None and high is not None
                      else f">= {low}" if low is not None else f"<= {high}")
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}")
        return value
    return _named(parse, name or "integer")  # type: ignore[return-value]


#: Any finite float (NaN and Inf refused).
finite_float = float_in(name="finite number")
#: A finite float > 0 (tolerances, learning rates).
positive_float = float_in(0.0, low_open=True, name="positive number")
#: A finite float >= 0.
nonnegative_float = float_in(0.0, name="non-negative number")
#: An integer >= 1 (epochs, batch sizes).
positive_int = int_in(1, name="positive integer")
#: An integer >= 0 (workers, counts where 0 means "none" or "all").
nonnegative_int = int_in(0, name="non-negative integer")
