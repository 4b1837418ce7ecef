"""Reading Caffe files: binary caffemodels (memory-mapped), mean binaryprotos, blobs as float32
arrays, and prototxt text, with the limits checked before protobuf parses it (nesting depth,
size) and unknown fields reported. Every problem is one :class:`CaffeFormatError` line naming
the file and the field."""

from __future__ import annotations

import math
import mmap
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np
from google.protobuf import text_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from ..limits import INT_MAX
from . import proto as cp

PathLike = str | os.PathLike[str]


class CaffeFormatError(ValueError):
    """A Caffe file that cannot be read or makes no sense; the message names file and spot."""


class CaffeFormatWarning(UserWarning):
    """Something Caffe would accept but that the reader cannot interpret (e.g. a custom field)."""


# --------------------------------------------------------------------------- reading


def read_prototxt(path: PathLike) -> Message:
    """Parse a text prototxt into a ``caffe.NetParameter`` (no upgrade, no filtering).

    Unknown field names (custom layers' parameters) do not fail the parse: they are
    skipped and each one is reported as a ``CaffeFormatWarning``.
    """
    net, notes = parse_prototxt(path)
    for note in notes:
        warnings.warn(note, CaffeFormatWarning, stacklevel=2)
    return net


def read_caffemodel(path: PathLike) -> Message:
    """Parse a binary caffemodel into a ``caffe.NetParameter`` (V1 or V2, not upgraded).

    Fields the schema does not know are kept as unknown fields.
    """
    name = os.fspath(path)
    net = cp.NetParameter()
    with open(name, "rb") as handle, _mapped(handle) as data:
        try:
            # The runtime copies what it keeps, so the mapping can go once this returns.
            net.ParseFromString(data)
        except DecodeError as exc:
            hint = " (it looks like a text prototxt)" if _looks_like_text(bytes(data[:256])) else ""
            raise CaffeFormatError(
                f"{name}: not a valid binary Caffe NetParameter{hint}: {exc}"
            ) from None
    try:
        names = [layer.name for layer in net.layer] + [layer.name for layer in net.layers]
    except UnicodeDecodeError:
        raise CaffeFormatError(f"{name}: corrupt caffemodel (layer name is not UTF-8)") from None
    if not names:
        raise CaffeFormatError(f"{name}: caffemodel contains no layers")
    return net


@contextmanager
def _mapped(handle: BinaryIO) -> Iterator[memoryview | bytes]:
    """The file's bytes, memory-mapped when it can be (a 100 MB caffemodel then costs no
    copy and no extra memory), else read."""
    try:
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # empty file, pipe, ...
        yield handle.read()
        return
    view = memoryview(mapping)
    try:
        yield view
    finally:
        view.release()
        mapping.close()


def read_mean_binaryproto(path: PathLike) -> np.ndarray:
    """Read a mean image (``BlobProto``, e.g. ``imagenet_mean.binaryproto``) as (C, H, W) float32.

    The channel order is whatever the file holds (BVLC means are BGR).
    """
    name = os.fspath(path)
    with open(name, "rb") as handle:
        data = handle.read()
    blob = cp.BlobProto()
    try:
        blob.ParseFromString(data)
    except DecodeError as exc:
        raise CaffeFormatError(f"{name}: not a valid binary Caffe BlobProto: {exc}") from None
    array, _ = blob_to_array(blob, f"{name}: mean blob")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.size == 0:
        raise CaffeFormatError(
            f"{name}: mean blob has shape {array.shape}, expected (1, C, H, W) or (C, H, W)"
        )
    return array


def blob_shape(blob: Message, where: str = "blob") -> tuple[tuple[int, ...], bool]:
    """A ``BlobProto``'s shape and whether it is legacy 4-D, its value count checked.

    As in Caffe's ``Blob::FromProto``, the deprecated num/channels/height/width fields
    win over ``shape`` when any of them is present, and ``double_data`` wins over ``data``.
    """
    legacy = any(blob.HasField(dim) for dim in ("num", "channels", "height", "width"))
    if legacy:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(int(d) for d in blob.shape.dim)
    if any(d < 0 for d in shape):
        raise CaffeFormatError(f"{where}: negative dimension in shape {shape}")
    stored = len(blob.double_data) or len(blob.data)
    count = math.prod(shape)  # Python ints: numpy's int64 product wraps (2^32 x 2^32 -> 0)
    if count > INT_MAX:  # Blob::Reshape: CHECK_LE(shape[i], INT_MAX / count_)
        raise CaffeFormatError(
            f"{where}: declared shape {shape} holds {count:,} values, more than a Caffe blob "
            f"may ({INT_MAX:,})"
        )
    if stored != count:
        raise CaffeFormatError(
            f"{where}: has {stored} values but its shape {shape} needs {count}"
        )
    return shape, legacy


def blob_to_array(
    blob: Message, where: str = "blob", out: np.ndarray | None = None
) -> tuple[np.ndarray, bool]:
    """Convert a ``BlobProto`` to a float32 array (written into ``out``, a flat float32 array
    of the right size, when given) and say whether its shape is legacy 4-D."""
    shape, legacy = blob_shape(blob, where)
    values = blob.double_data if len(blob.double_data) else blob.data
    if out is None:
        out = np.asarray(values, dtype=np.float32)
    elif len(values):
        out[...] = values
    return out.reshape(shape), legacy




# --------------------------------------------------------------------------- prototxt text


def parse_prototxt(path: PathLike) -> tuple[Message, list[str]]:
    """Parse strictly; if only unknown field names stand in the way, parse again skipping
    them and return one note per skipped field."""
    name = os.fspath(path)
    with open(name, "rb") as handle:
        data = handle.read(MAX_PROTOTXT_BYTES + 1)
    if len(data) > MAX_PROTOTXT_BYTES:
        raise CaffeFormatError(
            f"{name}: larger than {MAX_PROTOTXT_BYTES // 2**20} MB, too large for a prototxt"
        )
    if b"\x00" in data:
        raise CaffeFormatError(f"{name}: not a text prototxt (binary data; a .caffemodel?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaffeFormatError(
            f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    _check_nesting(name, text)
    net = cp.NetParameter()
    try:
        text_format.Parse(text, net, descriptor_pool=cp.POOL)
        return net, []
    except text_format.ParseError as exc:
        if "has no field named" not in str(exc):
            raise _text_error(name, exc) from None
    net = cp.NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_field=True, descriptor_pool=cp.POOL)
    except text_format.ParseError as exc:
        raise _text_error(name, exc) from None
    notes = [
        f"{name}:{line}:{column}: unknown field '{field_name}' in {message}"
        f"{_layer_words(net, index)} skipped (custom layer parameter?)"
        for message, field_name, line, column, index in _unknown_fields(text, net.DESCRIPTOR)
    ]
    return net, notes


def _layer_words(net: Message, index: tuple[str, int] | None) -> str:
    """`` of layer 'name' (Type)`` for the ``index``-th ``layer``/``layers`` entry."""
    if index is None:
        return ""
    layer = getattr(net, index[0])[index[1]]
    kind = str(layer.type)
    if index[0] == "layers":  # V1: the type is an enum number
        enum = layer.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number
        kind = enum[layer.type].name if layer.type in enum else kind
    return f" of layer '{layer.name}' ({kind})"


# Real nets nest messages 4-5 deep (layer { convolution_param { weight_filler {...} } });
# protobuf's text parser recurses once per level and hits Python's limit near 500.
MAX_PROTOTXT_DEPTH = 64
MAX_PROTOTXT_BYTES = 64 * 2**20  # the largest published deploy prototxts are < 1 MB

# Strings and comments, whose braces do not count, then the braces themselves.
_SKIPPED = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*')
_BRACES = re.compile(r"[{}<>]")


def _check_nesting(name: str, text: str) -> None:
    """Refuse text nested deeper than MAX_PROTOTXT_DEPTH before the parser recurses."""
    blanked = _SKIPPED.sub(lambda m: " " * len(m.group()), text)  # offsets stay valid
    depth = 0
    for match in _BRACES.finditer(blanked):
        depth += 1 if match.group() in "{<" else -1
        if depth > MAX_PROTOTXT_DEPTH:
            line = text.count("\n", 0, match.start()) + 1
            raise CaffeFormatError(
                f"{name}:{line}: messages nested more than {MAX_PROTOTXT_DEPTH} deep "
                "(real nets nest about 5)"
            )


def _text_error(name: str, exc: text_format.ParseError) -> CaffeFormatError:
    message = str(exc)
    if exc.GetLine() is not None:
        message = message.split(" : ", 1)[-1]
        return CaffeFormatError(f"{name}:{exc.GetLine()}:{exc.GetColumn()}: {message}")
    return CaffeFormatError(f"{name}: {message}")


def _unknown_fields(text: str, root: Descriptor
                    ) -> list[tuple[str, str, int, int, tuple[str, int] | None]]:
    """Walk the (already parseable) text and list (message, field, line, column, layer) of
    every field name the schema does not know; ``layer`` is ``("layer"|"layers", index)`` of
    the net's layer entry holding it (``None`` outside layers). Contents of unknown fields
    are not inspected."""
    tokens = text_format.Tokenizer(text.splitlines())
    stack: list[Descriptor | None] = [root]
    found: list[tuple[str, str, int, int, tuple[str, int] | None]] = []
    counts = {"layer": 0, "layers": 0}
    current: tuple[str, int] | None = None
    try:
        while not tokens.AtEnd():
            if tokens.TryConsume("}") or tokens.TryConsume(">"):
                stack.pop()
                if len(stack) == 1:
                    current = None
                continue
            name = tokens.ConsumeIdentifierOrNumber()
            where = tokens.ParseErrorPreviousToken("")
            message = stack[-1]
            fd = message.fields_by_name.get(name) if message is not None else None
            if message is not None and fd is None:
                found.append((message.full_name, name, where.GetLine(), where.GetColumn(),
                              current))
            tokens.TryConsume(":")
            if tokens.TryConsume("{") or tokens.TryConsume("<"):
                if len(stack) == 1 and fd is not None and name in counts:
                    current = (name, counts[name])
                    counts[name] += 1
                stack.append(fd.message_type if fd is not None else None)
            elif tokens.TryConsume("["):
                depth = 1
                while depth:
                    if tokens.TryConsume("[") or tokens.TryConsume("{"):
                        depth += 1
                    elif tokens.TryConsume("]") or tokens.TryConsume("}"):
                        depth -= 1
                    else:
                        tokens.NextToken()
            else:
                _skip_value(tokens)
            if not tokens.TryConsume(","):
                tokens.TryConsume(";")
    except text_format.ParseError:
        pass  # the parser proper accepted the text; report what was found so far
    return found


def _skip_value(tokens: text_format.Tokenizer) -> None:
    if tokens.TryConsumeByteString():
        while tokens.TryConsumeByteString():
            pass
        return
    if not (
        tokens.TryConsumeIdentifier() or tokens.TryConsumeInteger() or tokens.TryConsumeFloat()
    ):
        raise tokens.ParseError("expected a value")


def _looks_like_text(data: bytes) -> bool:
    head = data[:256].lstrip()
    return bool(head) and all(32 <= c < 127 or c in b"\t\r\n" for c in head)

