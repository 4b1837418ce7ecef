"""Attribute checks shared by the op registry and the checkpoint schema.

Each check takes ``(field, value)`` and raises :class:`FieldError` naming the field when the
value is not what a checkpoint may hold.
"""

from __future__ import annotations

import math
from typing import Any

MAX_SIDE = 16384  # largest input height/width a checkpoint may ask for
MAX_WIDTH = 1 << 20  # largest channel count / class count in an architecture spec


class FieldError(Exception):
    """A schema violation at ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def ints(field: str, v: Any, n: int | tuple[int, ...], low: int, high: int = MAX_SIDE) -> None:
    """``n`` integers (or one of the lengths in ``n``), each in ``low..high``."""
    sizes = (n,) if isinstance(n, int) else n
    if not isinstance(v, (list, tuple)) or len(v) not in sizes or not all(is_int(x) for x in v):
        want = " or ".join(str(s) for s in sizes)
        raise FieldError(field, f"expected {want} integers, got {short(v)}")
    for x in v:
        if not low <= x <= high:
            raise FieldError(field, f"values must be in {low}..{high}, got {short(v)}")


def integer(field: str, v: Any, low: int, high: int = MAX_WIDTH,
            optional: bool = False) -> None:
    if v is None and optional:
        return
    if not is_int(v) or not low <= v <= high:
        raise FieldError(field, f"expected an integer in {low}..{high}, got {short(v)}")


def number(field: str, v: Any, low: float = -math.inf, high: float = math.inf) -> None:
    if not is_num(v) or not low <= v <= high:
        rng = "" if math.isinf(low) and math.isinf(high) else f" in [{low}, {high}]"
        raise FieldError(field, f"expected a finite number{rng}, got {short(v)}")


def boolean(field: str, v: Any, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not isinstance(v, bool):
        raise FieldError(field, f"expected true or false, got {short(v)}")


def choice(field: str, v: Any, choices: tuple[str, ...] | None = None) -> None:
    if not isinstance(v, str):
        raise FieldError(field, f"expected a string, got {short(v)}")
    if choices is not None and v not in choices:
        raise FieldError(field, f"must be one of {list(choices)}, got {v!r}")


def numbers(field: str, v: Any, n: int | None = None) -> None:
    if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n) or \
            not all(is_num(x) for x in v):
        want = f"{n} finite numbers" if n is not None else "a list of finite numbers"
        raise FieldError(field, f"expected {want}, got {short(v)}")


def axis(field: str, v: Any) -> None:
    """An axis of an N x C x H x W blob, negative from the end as Caffe allows."""
    integer(field, v, -4, 3)
