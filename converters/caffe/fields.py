"""What every Caffe layer unit reads its fields with: the layer in its file (:class:`Where`,
which also builds the one-line errors), Caffe's integer/float field rules, kernel/pad/stride
resolution (``<name>_h/_w`` or the repeated field) and the shape helpers of ``Reshape``-time
checks. Errors name the prototxt or caffemodel, the layer and Caffe's field name."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import Message

from porting.checkpoint_schema import MAX_SIDE  # what a checkpoint may hold

from ..limits import INT_MAX
from .files import CaffeFormatError
from .net import CaffeLayer, CaffeNet

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Geometry:
    """Resolved 2-D kernel/pad/stride/dilation of a Convolution or Pooling layer."""

    kernel: tuple[int, int]
    pad: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)


class Where:
    """One layer in its files (and its net, when checking): message prefixes for prototxt
    fields and caffemodel blobs, and the blob-shape check."""

    def __init__(self, layer: CaffeLayer, prototxt: str, caffemodel: str | None = None,
                 net: CaffeNet | None = None) -> None:
        self.layer = layer
        self.net = net
        self.prototxt = prototxt
        self.proto = f"{prototxt}: layer {layer.name!r} ({layer.type})"
        self.model = f"{caffemodel or prototxt}: layer {layer.name!r} ({layer.type})"

    def field(self, msg: str) -> CaffeFormatError:
        return CaffeFormatError(f"{self.proto}: {msg}")

    def blob(self, msg: str) -> CaffeFormatError:
        return CaffeFormatError(f"{self.model}: {msg}")

    def expect_blob(self, i: int, shape: Sequence[int], what: str,
                    swap_with: tuple[int, Sequence[int], str] | None = None) -> None:
        """Blob ``i`` must exist with ``shape``; name a swap with blob ``swap_with[0]``."""
        layer = self.layer
        if i >= len(layer.blobs):
            raise self.blob(f"missing blob {i} ({what}) in the caffemodel")
        if layer.blob_matches(i, shape):
            return
        if swap_with is not None:
            j, other, other_what = swap_with
            if (j < len(layer.blobs) and layer.blob_matches(i, other)
                    and layer.blob_matches(j, shape)):
                raise self.blob(f"blobs {min(i, j)} and {max(i, j)} are swapped: blob {i} "
                                f"has the {other_what} shape {tuple(layer.blobs[i].shape)}, "
                                f"blob {j} the {what} shape {tuple(layer.blobs[j].shape)}")
        raise self.blob(f"blob {i} ({what}) has shape {tuple(layer.blobs[i].shape)}, "
                        f"expected {tuple(shape)}")


def param(layer: CaffeLayer, name: str) -> Message:
    """The layer's ``*_param`` message (defaults when the prototxt leaves it unset)."""
    return layer.params.get(name) or getattr(layer.proto, name)


def allowed(lo: int, hi: int | None) -> str:
    """``exactly 1``, ``1 to 2``, ``at least 2``: an arity in words."""
    if hi is None:
        return f"at least {lo}"
    return f"exactly {lo}" if lo == hi else f"{lo} to {hi}"


def int_field(w: Where, field_name: str, value: int, minimum: int,
              maximum: int = INT_MAX) -> int:
    if not minimum <= int(value) <= maximum:
        bound = f">= {minimum}" if minimum else ">= 0"
        top = "< 2^31" if maximum == INT_MAX else f"<= {maximum}"
        raise w.field(f"{field_name} must be an integer {bound} (and {top}), got {value}")
    return int(value)


def finite_field(w: Where, field_name: str, value: float, *, positive: bool = False,
                 below: float | None = None) -> float:
    v = float(value)
    bad = not math.isfinite(v) or (positive and v <= 0) or (below is not None and
                                                             not 0 <= v < below)
    if bad:
        need = "a finite number" + (" > 0" if positive else "") + (
            f" in [0, {below:g})" if below is not None else "")
        raise w.field(f"{field_name} must be {need}, got {v}")
    return v


def axis_field(w: Where, field_name: str, value: int, ndim: int) -> int:
    """A Caffe axis field (negative counts from the end) checked against an ``ndim`` bottom."""
    if not -ndim <= value < ndim:
        raise w.field(f"{field_name} {value} is out of range for a {ndim}-D bottom")
    return value % ndim


def hw(w: Where, msg: Message, section: str, name: str, default: int | None,
       minimum: int) -> tuple[int, int] | None:
    """Caffe's resolution of ``<name>_h/_w`` or the (repeated or scalar) ``<name>`` field;
    ``None`` when neither is set and there is no default."""
    h, wd = f"{name}_h", f"{name}_w"
    base = "kernel_size" if name == "kernel" else name
    raw = getattr(msg, base)
    repeated = not isinstance(raw, int)
    values = list(raw) if repeated else ([raw] if msg.HasField(base) else [])
    if msg.HasField(h) or msg.HasField(wd):
        if values:
            raise w.field(f"{section}: either {base} or {h}/{wd} can be given, not both")
        if not (msg.HasField(h) and msg.HasField(wd)):
            raise w.field(f"{section}: {h} and {wd} must be given together")
        return (int_field(w, f"{section}.{h}", getattr(msg, h), minimum, MAX_SIDE),
                int_field(w, f"{section}.{wd}", getattr(msg, wd), minimum, MAX_SIDE))
    if not values:
        return None if default is None else (default, default)
    if len(values) > 2:
        raise w.field(f"{section}.{base}: only 2-D {name} is supported, got {len(values)} "
                      f"values {values}")
    out = [int_field(w, f"{section}.{base}", v, minimum, MAX_SIDE) for v in values]
    return (out[0], out[-1])
