"""Fuzz campaign: mutated inputs through the real command-line entry points, in-process.

Every case writes one mutated input (or pair) into a fresh folder, runs the command's
``main(argv)`` in this process with stdout/stderr captured and a per-case timeout (SIGALRM),
then classifies the outcome:

========================  ===================================================================
``ok``                    exit 0 (for converters the checkpoint written must then load)
``clean``                 exit 2 and exactly one stderr line ``error: ...`` naming the input
``FAIL:traceback``        an exception escaped ``main`` (type and location recorded)
``FAIL:unclean``          exit 2 but not one line naming the file (a warning first, no name)
``FAIL:exit``             any other exit status (1 without --check, ...)
``FAIL:hang``             the case ran past ``--timeout`` seconds
``FAIL:leftover``         files left next to the output (temporary files, partial output)
``FAIL:unloadable``       a converter said 0 but ``porting.load`` refuses what it wrote
``FAIL:nonfinite``        ``validate`` scored a feature file holding NaN/Inf (exit 0)
``FAIL:payload``          a pickle payload ran (it would create a marker file)
``FAIL:crash``            the process died (a segfault in a C extension): cases run in a
                          forked child, which is restarted after the crashing case
========================  ===================================================================

Formats and what runs them:

* ``mat7`` / ``mat73``: ``convert-matconvnet`` (``porting.converters.matconvnet.main``) on the
  narrow CaffeNet ``model.mat`` (its 227x227 mean image reduced to the mean colour so that a
  case takes milliseconds), saved by scipy (v7) or as MATLAB's HDF5 layout (v7.3). Byte flips,
  truncations and insertions; struct edits (a field set to NaN/Inf/0/-1/huge/extra dims/a
  string/a cell, a field deleted, a layer deleted/duplicated/swapped/retyped) saved again by
  ``scipy.io.savemat``; HDF5 edits by h5py (values, shapes, dtypes, ``MATLAB_class``
  attributes, deleted datasets).
* ``caffemodel`` / ``prototxt``: ``convert-caffe`` (``porting.converters.caffe.main``) on the
  narrow CaffeNet. caffemodel: bytes, and protobuf field edits through
  ``porting.converters.caffe.proto`` (blob shapes and data, swapped or deleted blobs, layer
  types, names, bottoms, NaN weights). prototxt: text edits (numbers, deep nesting, types,
  bottoms and tops, deleted/duplicated lines, truncation).
* ``features``: ``validate --features`` (``porting.validation.cli.main``) on the bundled mini
  Market-1501, query/gallery files as ``.npy``, ``.mat`` v7 or v7.3: bytes, and array edits
  (NaN/Inf, complex, structured, object arrays holding a pickle payload, 0-d/1-d/3-d, widths,
  rows, variable names).
* ``checkpoint``: ``porting.load`` plus one probe forward at the checkpoint's input size (as a
  command would: a ``CheckpointError``/``GraphError`` is printed as one line, exit 2) on a
  converted graph checkpoint and a small canonical one: bytes (zip damage), and dict edits
  (state_dict dtypes, ranks, NaN, graph keys and layer attributes, preprocessing sizes, arch
  kwargs) plus pickle payloads that would create a marker file if unpickled.

Usage::

    .venv/bin/python bench/fuzz.py --cases 10000 --json fuzz.json      # every format
    .venv/bin/python bench/fuzz.py --formats prototxt --cases 500 --seed 3

Failures of converter formats are appended (one line each: format, mutation, exception type
and location) to ``--findings`` (default ``/tmp/fuzz_findings.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FORMATS = ("mat7", "mat73", "caffemodel", "prototxt", "features", "checkpoint")
CONVERTER_FORMATS = ("mat7", "mat73", "caffemodel", "prototxt")
MARKER = "PWNED"


class Hang(BaseException):
    """Raised by SIGALRM inside a case that ran too long (BaseException: code under test
    catching ``Exception`` must not swallow it)."""


@dataclass
class Case:
    """One generated input: files to write into the case folder, the argv to run, and the
    mutation's description."""

    files: dict[str, bytes]
    mutation: str
    run: str  # which runner
    argv: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    kind: str
    detail: str = ""


# --------------------------------------------------------------------------------------------
# Byte-level mutators
# --------------------------------------------------------------------------------------------

def mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Flips, truncations, insertions, deletions, block copies (what damaged downloads do)."""
    kind = rng.choice(["flip", "flip", "truncate", "insert", "delete", "zero", "copy"])
    buf = bytearray(data)
    n = len(buf)
    if n == 0:
        return bytes([rng.randrange(256)]), "insert-into-empty"
    if kind == "flip":
        k = rng.choice([1, 1, 2, 4, 16])
        for _ in range(k):
            buf[rng.randrange(n)] ^= 1 << rng.randrange(8) if rng.random() < 0.5 \
                else rng.randrange(1, 256)
        return bytes(buf), f"flip x{k}"
    if kind == "truncate":
        cut = rng.choice([rng.randrange(n), int(n * rng.random() ** 3), n - rng.randrange(1, 64)])
        cut = max(0, min(n - 1, cut))
        return bytes(buf[:cut]), f"truncate at {cut}/{n}"
    if kind == "insert":
        pos = rng.randrange(n)
        chunk = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 64])))
        return bytes(buf[:pos] + chunk + buf[pos:]), f"insert {len(chunk)} at {pos}"
    if kind == "delete":
        pos = rng.randrange(n)
        k = rng.choice([1, 8, 256])
        return bytes(buf[:pos] + buf[pos + k:]), f"delete {k} at {pos}"
    if kind == "zero":
        pos = rng.randrange(n)
        k = rng.choice([8, 512, 4096])
        buf[pos:pos + k] = bytes(len(buf[pos:pos + k]))
        return bytes(buf), f"zero {k} at {pos}"
    a, b = rng.randrange(n), rng.randrange(n)
    k = rng.choice([16, 256])
    buf[b:b + k] = buf[a:a + k]
    return bytes(buf[:n]), f"copy {k} from {a} to {b}"


# Values a structure-aware mutator puts where a number, vector or tensor was.
def _weird_number(rng: random.Random) -> float:
    return rng.choice([0, -1, 1, 2, 0.5, 1e9, 2 ** 31, 2 ** 63, -1e9, float("nan"), float("inf"),
                       -float("inf"), 60000, 3.7])


# --------------------------------------------------------------------------------------------
# MatConvNet .mat (v7 via scipy, v7.3 via h5py)
# --------------------------------------------------------------------------------------------

MCN_TYPES = ["conv", "pool", "relu", "lrn", "softmax", "softmaxloss", "dropout", "bnorm",
             "normalize", "loss", "custom", "sigmoid", "dagnn.Conv", "nonsense"]


def _weird_mat_value(rng: random.Random, old: Any) -> tuple[Any, str]:
    choice = rng.randrange(12)
    shape = np.shape(old) if isinstance(old, np.ndarray) else (1, 1)
    if choice == 0:
        return np.full(shape if 0 not in shape else (1, 1), _weird_number(rng)), "fill"
    if choice == 1:
        return np.zeros((0, 0)), "empty"
    if choice == 2:
        return np.array("abc"), "string"
    if choice == 3:
        arr = np.asarray(old) if isinstance(old, np.ndarray) and old.dtype != object else \
            np.ones((1, 2))
        return arr.reshape(arr.shape + (1, 1))[..., None] * np.ones(2), "extra-dim"
    if choice == 4:
        return np.array([[_weird_number(rng)] * rng.choice([1, 3, 5, 9])]), "length"
    if choice == 5:
        cell = np.empty((1, 2), dtype=object)
        cell[0, 0], cell[0, 1] = np.ones((1, 1)), np.array("x")
        return cell, "cell"
    if choice == 6 and isinstance(old, np.ndarray) and old.dtype != object and old.size:
        arr = np.array(old, dtype=np.float64)
        arr.flat[rng.randrange(arr.size)] = _weird_number(rng)
        return arr.astype(old.dtype) if old.dtype.kind == "f" else arr, "element"
    if choice == 7 and isinstance(old, np.ndarray) and old.dtype != object and old.ndim >= 2:
        return np.ascontiguousarray(np.swapaxes(old, 0, -1)), "transpose"
    if choice == 8:
        return np.array([[True]]), "logical"
    if choice == 9:
        return np.array([[1, 2]], dtype=np.int8), "int8"
    if choice == 10:
        return {"a": np.ones((1, 1))}, "struct"
    return np.full((1, 4), _weird_number(rng)), "vector4"


def _mat_struct_edit(rng: random.Random, mat: dict[str, Any]) -> str:
    layers = mat["layers"]
    n = layers.shape[1]
    action = rng.randrange(10)
    if action <= 4:
        i = rng.randrange(n)
        rec = layers[0, i][0, 0]
        names = rec.dtype.names
        fname = rng.choice(names)
        if fname == "weights" and rng.random() < 0.6:
            w = rec["weights"]
            if isinstance(w, np.ndarray) and w.dtype == object and w.size:
                j = rng.randrange(w.size)
                new, how = _weird_mat_value(rng, w.flat[j])
                w.flat[j] = new
                return f"layer {i} weights[{j}] {how}"
            rec["weights"] = _weird_mat_value(rng, w)[0]
            return f"layer {i} weights replaced"
        if fname == "type" and rng.random() < 0.7:
            t = rng.choice(MCN_TYPES)
            rec["type"] = np.array([t])
            return f"layer {i} type -> {t}"
        new, how = _weird_mat_value(rng, rec[fname])
        rec[fname] = new
        return f"layer {i} {fname} {how}"
    if action == 5:  # delete a field of one layer
        i = rng.randrange(n)
        rec = layers[0, i][0, 0]
        drop = rng.choice(rec.dtype.names)
        keep = [x for x in rec.dtype.names if x != drop]
        new = np.zeros((1, 1), dtype=[(x, object) for x in keep])
        for x in keep:
            new[0, 0][x] = rec[x]
        layers[0, i] = new
        return f"layer {i} field {drop} deleted"
    if action == 6:  # delete / duplicate / swap layers
        i, j = rng.randrange(n), rng.randrange(n)
        how = rng.choice(["delete", "duplicate", "swap"])
        items = list(layers[0])
        if how == "delete":
            del items[i]
        elif how == "duplicate":
            items.insert(j, items[i])
        else:
            items[i], items[j] = items[j], items[i]
        out = np.empty((1, len(items)), dtype=object)
        for k, item in enumerate(items):
            out[0, k] = item
        mat["layers"] = out
        return f"layers {how} {i} {j}"
    meta = mat["meta"][0, 0]
    if action == 7:
        norm = meta["normalization"][0, 0]
        fname = rng.choice(norm.dtype.names)
        new, how = _weird_mat_value(rng, norm[fname])
        if fname == "imageSize" and rng.random() < 0.5:
            new, how = np.array([[60000.0, 60000.0, 3.0]]), "huge"
        norm[fname] = new
        return f"meta.normalization.{fname} {how}"
    if action == 8:
        fname = rng.choice(meta.dtype.names)
        meta[fname] = _weird_mat_value(rng, meta[fname])[0]
        return f"meta.{fname} replaced"
    mat[rng.choice(["layers", "meta"])] = _weird_mat_value(rng, None)[0]
    return "top-level variable replaced"


def _h5_edit(rng: random.Random, path: Path) -> str:
    import h5py

    with h5py.File(path, "r+") as f:
        items: list[tuple[str, Any]] = []
        f.visititems(lambda name, obj: items.append((name, obj)))
        name, obj = rng.choice(items)
        action = rng.randrange(7)
        if action == 0 and isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size:
            data = obj[()]
            data.flat[rng.randrange(data.size)] = _weird_number(rng)
            obj[...] = data
            return f"h5 {name}: value"
        if action == 1:
            attrs = dict(obj.attrs)
            cls = rng.choice(["double", "single", "char", "cell", "struct", "logical", "int8",
                              "function_handle", "FileWrapper__", "garbage", ""])
            obj.attrs["MATLAB_class"] = np.bytes_(cls)
            return f"h5 {name}: MATLAB_class {attrs.get('MATLAB_class')!r} -> {cls}"
        if action == 2 and obj.attrs:
            key = rng.choice(list(obj.attrs))
            del obj.attrs[key]
            return f"h5 {name}: attribute {key} deleted"
        if action == 3 and name != "#refs#":
            del f[name]
            return f"h5 {name}: deleted"
        if action == 4 and isinstance(obj, h5py.Dataset):
            attrs = dict(obj.attrs)
            del f[name]
            shape = rng.choice([(), (1,), (3, 1, 2), (0, 0), (2, 60000)])
            dtype = rng.choice([np.float64, np.uint16, np.int64, np.uint8])
            new = f.create_dataset(name, data=np.ones(shape, dtype=dtype))
            for k, v in attrs.items():
                new.attrs[k] = v
            return f"h5 {name}: replaced by {shape} {np.dtype(dtype).name}"
        if action == 5 and isinstance(obj, h5py.Dataset) and obj.dtype == h5py.ref_dtype \
                and obj.size:
            data = obj[()]
            data.flat[rng.randrange(data.size)] = f.ref if rng.random() < 0.5 else h5py.Reference()
            obj[...] = data
            return f"h5 {name}: reference redirected"
        if action == 6 and isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiu" \
                and obj.size:
            data = obj[()].astype(np.float64)
            attrs = dict(obj.attrs)
            del f[name]
            new = f.create_dataset(name, data=data.reshape(data.shape + (1,))
                                   if rng.random() < 0.5 else data.T.copy())
            for k, v in attrs.items():
                new.attrs[k] = v
            return f"h5 {name}: reshaped"
        obj.attrs["MATLAB_class"] = np.bytes_("double")
        return f"h5 {name}: retyped double"


# --------------------------------------------------------------------------------------------
# Caffe: caffemodel protobuf edits and prototxt text edits
# --------------------------------------------------------------------------------------------

CAFFE_TYPES = ["Convolution", "Pooling", "ReLU", "LRN", "InnerProduct", "Dropout", "Softmax",
               "SoftmaxWithLoss", "Accuracy", "Eltwise", "Concat", "Split", "BatchNorm", "Scale",
               "Flatten", "Reshape", "Slice", "Power", "Input", "Data", "Bogus"]


def _caffemodel_edit(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    from porting.converters.caffe import proto as cp

    net = cp.NetParameter()
    net.ParseFromString(data)
    layers = net.layer
    with_blobs = [layer for layer in layers if len(layer.blobs)]
    action = rng.randrange(9)
    layer = rng.choice(with_blobs if with_blobs and action < 5 else list(layers))
    what = f"layer {layer.name!r}"
    if action == 0 and layer.blobs:
        blob = rng.choice(layer.blobs)
        dims = list(blob.shape.dim)
        if dims:
            k = rng.randrange(len(dims))
            dims[k] = rng.choice([0, 1, dims[k] + 1, dims[k] * 2, 2 ** 31])
        if rng.random() < 0.3:
            dims = dims[1:] if rng.random() < 0.5 else dims + [1]
        del blob.shape.dim[:]
        blob.shape.dim.extend(dims)
        return net.SerializeToString(), f"{what}: blob shape -> {dims}"
    if action == 1 and layer.blobs:
        blob = rng.choice(layer.blobs)
        if blob.data:
            blob.data[rng.randrange(len(blob.data))] = rng.choice(
                [float("nan"), float("inf"), -float("inf"), 3e38])
        return net.SerializeToString(), f"{what}: non-finite weight"
    if action == 2 and layer.blobs:
        blob = rng.choice(layer.blobs)
        n = len(blob.data)
        keep = rng.choice([0, n // 2, max(0, n - 1)])
        del blob.data[keep:]
        return net.SerializeToString(), f"{what}: blob data cut to {keep}/{n}"
    if action == 3 and len(layer.blobs) >= 2:
        a = cp.BlobProto()
        a.CopyFrom(layer.blobs[0])
        layer.blobs[0].CopyFrom(layer.blobs[1])
        layer.blobs[1].CopyFrom(a)
        return net.SerializeToString(), f"{what}: blobs swapped"
    if action == 4 and layer.blobs:
        del layer.blobs[rng.randrange(len(layer.blobs))]
        return net.SerializeToString(), f"{what}: blob deleted"
    if action == 5:
        t = rng.choice(CAFFE_TYPES)
        layer.type = t
        return net.SerializeToString(), f"{what}: type -> {t}"
    if action == 6:
        layer.name = rng.choice(["", "conv1", layers[0].name, "x" * 300])
        return net.SerializeToString(), f"{what}: renamed {layer.name[:10]!r}"
    if action == 7 and layer.blobs:
        blob = layer.blobs.add()
        blob.CopyFrom(layer.blobs[0])
        return net.SerializeToString(), f"{what}: extra blob"
    dup = layers.add()
    dup.CopyFrom(layer)
    return net.SerializeToString(), f"{what}: duplicated"


_NUMBER = re.compile(r"(?<=: )-?\d+(\.\d+)?(e-?\d+)?")


def _prototxt_edit(rng: random.Random, text: str) -> tuple[str, str]:
    lines = text.splitlines()
    action = rng.randrange(9)
    if action <= 2:
        spots = [m for m in _NUMBER.finditer(text)]
        if spots:
            m = rng.choice(spots)
            new = rng.choice(["0", "-1", "60000", "1e40", "inf", "nan", "2.5", "4294967296",
                              "99999999999999999999", "-0"])
            return text[:m.start()] + new + text[m.end():], f"number {m.group()} -> {new}"
    if action == 3:
        depth = rng.choice([50, 600, 5000])
        return text + "\nlayer { " * depth + "}" * depth + "\n", f"nesting {depth}"
    if action == 4:
        idx = [i for i, line in enumerate(lines) if "type:" in line]
        if idx:
            i = rng.choice(idx)
            t = rng.choice(CAFFE_TYPES)
            lines[i] = re.sub(r'type:\s*"[^"]*"', f'type: "{t}"', lines[i])
            return "\n".join(lines), f"line {i + 1} type -> {t}"
    if action == 5:
        idx = [i for i, line in enumerate(lines) if "bottom:" in line or "top:" in line]
        if idx:
            i = rng.choice(idx)
            how = rng.choice(["delete", "duplicate", "rename"])
            if how == "delete":
                del lines[i]
            elif how == "duplicate":
                lines.insert(i, lines[i])
            else:
                lines[i] = re.sub(r'"[^"]*"', '"ghost"', lines[i])
            return "\n".join(lines), f"line {i + 1} bottom/top {how}"
    if action == 6 and lines:
        i = rng.randrange(len(lines))
        how = rng.choice(["delete", "duplicate"])
        if how == "delete":
            del lines[i]
        else:
            lines.insert(i, lines[i])
        return "\n".join(lines), f"line {i + 1} {how}"
    if action == 7:
        shape = rng.choice(["dim: 1 dim: 3 dim: 60000 dim: 60000", "dim: 0 dim: 3 dim: 2 dim: 2",
                            "dim: 1 dim: 3", "dim: -1 dim: 3 dim: 227 dim: 227"])
        return (re.sub(r"input_shape\s*\{[^}]*\}", f"input_shape {{ {shape} }}", text),
                f"input_shape -> {shape}")
    cut = rng.randrange(len(text) + 1)
    return text[:cut], f"truncate at {cut}"


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------

class Payload:
    """Unpickling this would create the marker file (the fuzz checks it never does)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _feature_edit(rng: random.Random, arr: np.ndarray, marker: str) -> tuple[Any, str]:
    a = arr.copy()
    action = rng.randrange(12)
    if action <= 2:
        k = rng.choice([1, 1, 5])
        for _ in range(k):
            a[rng.randrange(a.shape[0]), rng.randrange(a.shape[1])] = rng.choice(
                [np.nan, np.inf, -np.inf])
        return a, f"{k} non-finite"
    if action == 3:
        return a.astype(rng.choice([np.complex64, np.float16, np.int32, np.bool_, np.float64,
                                    np.uint8])), "dtype"
    if action == 4:
        return rng.choice([a[0, 0], a[0], a[None], a[:, :, None]]), "ndim"
    if action == 5:
        return (a[:-1] if rng.random() < 0.5 else np.vstack([a, a[:1]])), "rows"
    if action == 6:
        return (a[:, :-1] if rng.random() < 0.5 else np.hstack([a, a[:, :1]])), "width"
    if action == 7:
        s = np.zeros(a.shape[0], dtype=[("x", "f4"), ("y", "f4")])
        return s, "structured"
    if action == 8:
        o = np.empty((a.shape[0], 1), dtype=object)
        o[:] = None
        o[0, 0] = Payload(marker)
        return o, "object-payload"
    if action == 9:
        return a[:0], "empty"
    if action == 10:
        with np.errstate(over="ignore"):
            return a * np.float32(1e38) * np.float32(10), "overflow"
    return a.astype(np.float64) * 1e300, "float64-huge"


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------

def _weird_value(rng: random.Random, marker: str) -> tuple[Any, str]:
    import torch

    options: list[tuple[Any, str]] = [
        (None, "None"), ({}, "{}"), ([], "[]"), ("x", "str"), (-1, "-1"), (0, "0"),
        (10 ** 12, "huge int"), (float("nan"), "nan"), (float("inf"), "inf"), (True, "True"),
        ([1, 2, 3], "list3"), ({"p": 0.5}, "dict"), ([30000, 30000], "[30000, 30000]"),
        (torch.ones(3, dtype=torch.int64), "int tensor"), (torch.ones(2, dtype=torch.bool),
                                                            "bool tensor"),
        (torch.tensor(float("nan")), "nan tensor"), (torch.ones(()), "0-d tensor"),
        (Payload(marker), "PAYLOAD"), ([[[[1]]]], "nested list"), ("224x224", "size string"),
    ]
    return rng.choice(options)


def _paths(obj: Any, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    """Every (container, key) path in a checkpoint dict, for random edits."""
    out = []
    if depth > 6:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            if k != "state_dict":
                out += _paths(v, prefix + (k,), depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:50]):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,), depth + 1)
    return out


def _get(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _checkpoint_edit(rng: random.Random, ck: dict[str, Any], marker: str) -> str:
    import torch

    action = rng.randrange(10)
    sd = ck.get("state_dict")
    if action <= 2 and isinstance(sd, dict) and sd:
        key = rng.choice(sorted(sd))
        t = sd[key]
        how = rng.randrange(8)
        if how == 0:
            sd[key] = t.to(rng.choice([torch.int64, torch.bool, torch.int8, torch.complex64,
                                       torch.float16, torch.float64, torch.uint8]))
        elif how == 1:
            sd[key] = t.reshape(-1)
        elif how == 2 and t.numel():
            t = t.clone()
            t.view(-1)[rng.randrange(t.numel())] = rng.choice([float("nan"), float("inf")])
            sd[key] = t
        elif how == 3:
            del sd[key]
        elif how == 4:
            sd[key] = _weird_value(rng, marker)[0]
        elif how == 5:
            sd[key] = t[..., :1].clone() if t.dim() else t
        elif how == 6:
            sd[key] = t.reshape(t.shape + (1,)) if t.dim() < 6 else t
        else:
            sd[key] = torch.zeros(0)
        return f"state_dict[{key!r}] edit {how}"
    graph = ck.get("graph")
    if action <= 5 and isinstance(graph, dict) and graph.get("layers"):
        layers = graph["layers"]
        i = rng.randrange(len(layers))
        layer = layers[i]
        how = rng.randrange(7)
        if how == 0 and layer.get("attrs"):
            name = rng.choice(sorted(layer["attrs"]))
            value, what = _weird_value(rng, marker)
            layer["attrs"][name] = value
            return f"layer {i} attrs.{name} -> {what}"
        if how == 1:
            from porting.graph import OPS

            layer["op"] = rng.choice(sorted(OPS))
            return f"layer {i} op -> {layer['op']}"
        if how == 2:
            layer["inputs"] = rng.choice([[], layer["inputs"] * 2, ["ghost"],
                                          layer["inputs"][:1] + ["label"]])
            return f"layer {i} inputs {layer['inputs']}"
        if how == 3:
            key = rng.choice(["name", "type", "op", "inputs", "outputs", "attrs", "params"])
            layer.pop(key, None)
            return f"layer {i} {key} deleted"
        if how == 4:
            j = rng.randrange(len(layers))
            layers[i], layers[j] = layers[j], layers[i]
            return f"layers {i} <-> {j}"
        if how == 5 and layer.get("params"):
            slot = rng.choice(sorted(layer["params"]))
            other = rng.choice(sorted(ck["state_dict"])).removeprefix("params.") \
                if isinstance(ck.get("state_dict"), dict) and ck["state_dict"] else "x"
            layer["params"][slot] = other
            return f"layer {i} params.{slot} -> {other}"
        del layers[i]
        return f"layer {i} deleted"
    if action == 6:
        pre = ck.get("preprocess")
        if isinstance(pre, dict):
            key = rng.choice(["input_size", "resize", "mean", "colour", "crop"])
            value, what = rng.choice([([30000, 30000], "[30000, 30000]"), ("224", "str"),
                                      ([0, 5], "zero"), ([9000, 9000], "[9000, 9000]"),
                                      ([float("nan")] * 3, "nan"), _weird_value(rng, marker)])
            pre[key] = value
            return f"preprocess.{key} -> {what}"
    paths = [p for p in _paths(ck) if p[:1] != ("state_dict",)]
    path = rng.choice(paths)
    parent = _get(ck, path[:-1])
    if rng.random() < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
        return f"{'.'.join(map(str, path))} deleted"
    value, what = _weird_value(rng, marker)
    parent[path[-1]] = value
    return f"{'.'.join(map(str, path))} -> {what}"


# --------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------

class Seeds:
    """The unmutated inputs, built once in ``workdir/seeds``."""

    def __init__(self, workdir: Path) -> None:
        import scipy.io
        import torch

        sys.path.insert(0, str(ROOT / "tests"))
        from matv73 import save_v73

        from porting.converters.matfile import load_mat

        d = workdir / "seeds"
        d.mkdir(parents=True, exist_ok=True)
        mat = scipy.io.loadmat(FIXTURES / "matconvnet/caffenet_narrow/model.mat")
        norm = mat["meta"][0, 0]["normalization"][0, 0]
        norm["averageImage"] = norm["averageImage"].reshape(-1, 3).mean(0).reshape(1, 1, 3) \
            .astype(np.float32)
        classes = mat["meta"][0, 0]["classes"][0, 0]  # 1000 names: most of the file's objects
        for name in classes.dtype.names:
            classes[name] = classes[name][:, :3]
        self.mat_struct = mat
        scipy.io.savemat(d / "model.mat", {k: v for k, v in mat.items()
                                           if not k.startswith("__")})
        self.mat7 = (d / "model.mat").read_bytes()
        save_v73(d / "model73.mat", load_mat(d / "model.mat"))
        self.mat73 = (d / "model73.mat").read_bytes()
        self.prototxt = (FIXTURES / "caffe/caffenet_narrow/deploy.prototxt").read_text()
        self.caffemodel = (FIXTURES / "caffe/caffenet_narrow/weights.caffemodel").read_bytes()

        from porting.validation.datasets import load_market1501
        from porting.validation.mini import build_mini_market

        self.mini = d / "market"
        if not (self.mini / "query").is_dir():
            build_mini_market(self.mini)
        data = load_market1501(self.mini, parts=("query", "gallery"), check_images="none")
        rng = np.random.default_rng(0)
        self.query = rng.standard_normal((len(data.query.pids), 16)).astype(np.float32)
        self.gallery = rng.standard_normal((len(data.gallery.pids), 16)).astype(np.float32)

        from porting.checkpoint import make_checkpoint
        from porting.converters.caffe import main as convert_caffe

        graph_ckpt = d / "graph.pth"
        with contextlib.redirect_stdout(io.StringIO()):
            rc = convert_caffe([str(FIXTURES / "caffe/caffenet_narrow/deploy.prototxt"),
                                str(FIXTURES / "caffe/caffenet_narrow/weights.caffemodel"),
                                "-o", str(graph_ckpt), "-q", "--arch", "none"])
        assert rc == 0, "seed conversion failed"
        self.graph_ckpt = graph_ckpt.read_bytes()
        from porting.models import build_model

        spec = {"name": "siamese", "trunk": {"name": "resnet50", "kwargs": {
            "semantics": "matconvnet", "num_classes": None, "width": 2}},
            "kwargs": {"feat_dim": 16, "num_ids": 5, "dropout": 0.9}}
        torch.manual_seed(0)
        model = build_model(spec)
        canon = d / "canonical.pth"
        torch.save(make_checkpoint(model.state_dict(), arch=spec,
                                   preprocess={"input_size": [224, 224], "mean": [1.0, 2.0, 3.0]},
                                   recipe="market-matconvnet"), canon)
        self.canonical_ckpt = canon.read_bytes()


# --------------------------------------------------------------------------------------------
# Case generation
# --------------------------------------------------------------------------------------------

def _save_features(arr: Any, kind: str) -> bytes:
    import scipy.io

    buf = io.BytesIO()
    if kind == "npy":
        np.save(buf, arr, allow_pickle=True)
        return buf.getvalue()
    if kind == "mat":
        scipy.io.savemat(buf, {"ff": arr})
        return buf.getvalue()
    from matv73 import save_v73

    with tempfile.TemporaryDirectory() as t:
        save_v73(Path(t) / "f.mat", {"ff": arr})
        return (Path(t) / "f.mat").read_bytes()


def make_case(fmt: str, rng: random.Random, seeds: Seeds, case_dir: Path) -> Case:
    """One mutated input for ``fmt`` (structure-aware about half the time)."""
    import copy

    marker = str(case_dir / MARKER)
    structural = rng.random() < 0.55
    if fmt == "mat7":
        if structural:
            import scipy.io

            mat = copy.deepcopy(seeds.mat_struct)
            what = _mat_struct_edit(rng, mat)
            buf = io.BytesIO()
            scipy.io.savemat(buf, {k: v for k, v in mat.items() if not k.startswith("__")})
            data = buf.getvalue()
        else:
            data, what = mutate_bytes(rng, seeds.mat7)
        return Case({"model.mat": data}, what, "matconvnet", ["model.mat"])
    if fmt == "mat73":
        if structural:
            tmp = case_dir / "model.mat"
            tmp.write_bytes(seeds.mat73)
            what = _h5_edit(rng, tmp)
            data = tmp.read_bytes()
            tmp.unlink()
        else:
            data, what = mutate_bytes(rng, seeds.mat73)
        return Case({"model.mat": data}, what, "matconvnet", ["model.mat"])
    if fmt == "caffemodel":
        data, what = (_caffemodel_edit(rng, seeds.caffemodel) if structural
                      else mutate_bytes(rng, seeds.caffemodel))
        return Case({"deploy.prototxt": seeds.prototxt.encode(), "weights.caffemodel": data},
                    what, "caffe", ["deploy.prototxt", "weights.caffemodel"])
    if fmt == "prototxt":
        if structural or rng.random() < 0.5:
            text, what = _prototxt_edit(rng, seeds.prototxt)
            data = text.encode()
        else:
            data, what = mutate_bytes(rng, seeds.prototxt.encode())
        return Case({"deploy.prototxt": data, "weights.caffemodel": seeds.caffemodel},
                    what, "caffe", ["deploy.prototxt", "weights.caffemodel"])
    if fmt == "features":
        kind = rng.choice(["npy", "mat", "mat73"])
        ext = "npy" if kind == "npy" else "mat"
        which = rng.choice(["query", "gallery"])
        q, g = seeds.query, seeds.gallery
        files = {f"q.{ext}": _save_features(q, kind), f"g.{ext}": _save_features(g, kind)}
        name = f"{which[0]}.{ext}"
        base = q if which == "query" else g
        if structural:
            arr, what = _feature_edit(rng, base, marker)
            try:
                files[name] = _save_features(arr, kind)
            except Exception as exc:  # noqa: BLE001 - the writer cannot store it: as bytes
                files[name], what = mutate_bytes(rng, files[name])
                what = f"{what} (writer refused: {type(exc).__name__})"
        else:
            files[name], what = mutate_bytes(rng, files[name])
        return Case(files, f"{kind} {which}: {what}", "validate", [f"q.{ext}", f"g.{ext}"])
    # checkpoints
    import torch

    base = seeds.canonical_ckpt if rng.random() < 0.25 else seeds.graph_ckpt
    label = "canonical" if base is seeds.canonical_ckpt else "graph"
    if structural:
        ck = torch.load(io.BytesIO(base), weights_only=True)
        what = _checkpoint_edit(rng, ck, marker)
        if rng.random() < 0.1:
            ck.setdefault("meta", {})
            if isinstance(ck["meta"], dict):
                ck["meta"]["note"] = Payload(marker)
                what += " + payload in meta"
        buf = io.BytesIO()
        torch.save(ck, buf)
        data = buf.getvalue()
    else:
        data, what = mutate_bytes(rng, base)
    return Case({"net.pth": data}, f"{label}: {what}", "load", ["net.pth"])


# --------------------------------------------------------------------------------------------
# Running a case
# --------------------------------------------------------------------------------------------

def _load_main(argv: list[str]) -> int:
    """What a command does with a checkpoint: load it, run one probe forward at its input size,
    and report a bad file as one line (exit 2)."""
    import torch

    import porting
    from porting.checkpoint import CheckpointError, estimate_memory, load_checkpoint
    from porting.graph import GraphError

    path = argv[0]
    try:
        model = porting.load(path)
        ck = load_checkpoint(path)
        pre = ck.get("preprocess") or {}
        if not pre.get("input_size") or estimate_memory(ck) > 512 << 20:
            return 0  # nothing to probe with, or too costly for a fuzz case
        x = torch.zeros(1, 3, *pre["input_size"])
        with torch.no_grad():
            if hasattr(model, "embed"):
                model.embed(x)
            else:
                model(**{model.inputs[0]: x}, outputs=[model.layers[-1]["outputs"][0]]
                      if "label" in model.inputs else None)
    except (CheckpointError, GraphError, ValueError) as exc:  # what validate/export report
        msg = str(exc).splitlines()[0]
        print(f"error: {msg if path in msg else f'{path}: {msg}'}", file=sys.stderr)
        return 2
    return 0


def _runner(name: str) -> Callable[[list[str]], int]:
    if name == "matconvnet":
        from porting.converters.matconvnet import main
    elif name == "caffe":
        from porting.converters.caffe import main
    elif name == "validate":
        from porting.validation.cli import main
    else:
        main = _load_main
    return main


def _location(exc: BaseException) -> str:
    """The innermost frame in the repository (and the innermost frame overall)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if str(ROOT) in f.filename and "/bench/" not in f.filename
            and ".venv" not in f.filename]
    inner = frames[-1] if frames else None
    where = ""
    if ours:
        f = ours[-1]
        where = f"{os.path.relpath(f.filename, ROOT)}:{f.lineno} in {f.name}"
    if inner is not None and (not ours or inner is not ours[-1]):
        where += f" (raised in {Path(inner.filename).name}:{inner.lineno} {inner.name})"
    return where


def _has_nonfinite(path: Path) -> bool:
    """Whether a feature file, read independently, holds NaN/Inf numbers."""
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            arrays = [arr]
        else:
            from porting.converters.matfile import load_mat

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arrays = [v for v in load_mat(path).values() if isinstance(v, np.ndarray)]
        return any(a.dtype.kind in "fc" and not np.isfinite(a).all() for a in arrays)
    except Exception:  # noqa: BLE001 - unreadable: nothing could have been scored
        return False


def run_case(case: Case, case_dir: Path, seeds: Seeds, timeout: float) -> Outcome:
    """Write the case's files, run its command in-process, classify what happened."""
    for name, data in case.files.items():
        (case_dir / name).write_bytes(data)
    out_dir = case_dir / "out"
    out_dir.mkdir()
    out = out_dir / "net.pth"
    argv = [str(case_dir / a) for a in case.argv]
    if case.run in ("matconvnet", "caffe"):
        argv += ["-o", str(out), "-q"]
    elif case.run == "validate":
        argv = ["--root", str(seeds.mini), "--features", *argv, "-q"]
    main = _runner(case.run)
    stdout, stderr = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    rc: int | None = None
    failure: Outcome | None = None
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
                warnings.catch_warnings():
            warnings.simplefilter("default")
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except Hang:
        failure = Outcome("FAIL:hang", f"over {timeout}s")
    except RecursionError as exc:
        failure = Outcome("FAIL:traceback", f"RecursionError at {_location(exc)}")
    except Exception as exc:  # noqa: BLE001 - this is what the campaign looks for
        failure = Outcome("FAIL:traceback", f"{type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:120] if str(exc) else ''} "
                          f"at {_location(exc)}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if (case_dir / MARKER).exists():
        return Outcome("FAIL:payload", "a pickle payload ran")
    if failure is not None:
        return failure
    inputs = set(case.files) | {"out"}
    left = sorted(p.name for p in case_dir.iterdir() if p.name not in inputs)
    left += sorted(p.name for p in out_dir.iterdir() if not (rc == 0 and p == out))
    if left:
        return Outcome("FAIL:leftover", f"rc {rc}, left {left[:4]}")
    err = [line for line in stderr.getvalue().splitlines() if line.strip()]
    if rc == 0:
        if case.run in ("matconvnet", "caffe"):
            from porting.checkpoint import CheckpointError

            try:
                import porting

                porting.load(out)
            except CheckpointError as exc:
                return Outcome("FAIL:unloadable", str(exc).splitlines()[0][:200])
        if case.run == "validate" and any(_has_nonfinite(case_dir / n) for n in case.files):
            return Outcome("FAIL:nonfinite", "exit 0 on a file holding NaN/Inf")
        return Outcome("ok")
    if rc == 2:
        names = [Path(a).name for a in case.argv]
        if len(err) == 1 and err[0].startswith("error: ") and any(n in err[0] for n in names):
            return Outcome("clean", err[0][:200])
        return Outcome("FAIL:unclean", " | ".join(err)[:300] or "(nothing on stderr)")
    return Outcome("FAIL:exit", f"exit {rc}: {' | '.join(err)[:200]}")


# --------------------------------------------------------------------------------------------
# The campaign
# --------------------------------------------------------------------------------------------

@dataclass
class FormatResult:
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _limit_memory(extra: int = 6 << 30) -> None:
    """Cap the address space so that a runaway allocation fails here rather than the box."""
    import resource

    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        want = vm + extra
        if hard == resource.RLIM_INFINITY or want < hard:
            resource.setrlimit(resource.RLIMIT_AS, (want, hard))
    except (OSError, ValueError, StopIteration):
        pass


def _after_fork() -> None:
    """Forget thread pools the parent started: their threads do not exist in a forked child,
    and waiting on them would hang (the converters hash the source file on a worker thread;
    libgomp's team, which torch's kernels enter whenever more than one thread is set, hung
    a case in a forked child of the test suite)."""
    import torch

    torch.set_num_threads(1)  # no OpenMP team after fork: every kernel runs inline
    common = sys.modules.get("porting.converters.common")
    if common is not None and getattr(common, "_HASHER", None) is not None:
        common._HASHER = None


def _run_cases(fmt: str, start: int, cases: int, seed: int, workdir: Path, timeout: float,
               seeds: Seeds, progress: bool, log: Path, current: Path) -> None:
    """Run cases ``start..cases-1`` of ``fmt``, one JSON line each in ``log``; before a case
    runs, its index and mutation are written to ``current`` (read back if the process dies)."""
    from porting.progress import Progress

    bar = Progress(cases - start, f"fuzz {fmt}", enabled=progress, unit="case")
    with open(log, "a") as out:
        for i in range(start, cases):
            rng = random.Random(f"{seed}:{fmt}:{i}")
            case_dir = workdir / f"case-{fmt}"
            shutil.rmtree(case_dir, ignore_errors=True)
            case_dir.mkdir(parents=True)
            record: dict[str, Any] = {"case": i}
            try:
                try:
                    case = make_case(fmt, rng, seeds, case_dir)
                except Exception as exc:  # noqa: BLE001 - the generator's own limits
                    record.update(kind="skipped", mutation="generation failed",
                                  detail=repr(exc)[:200])
                else:
                    current.write_text(json.dumps({"case": i, "mutation": case.mutation}))
                    outcome = run_case(case, case_dir, seeds, timeout)
                    record.update(kind=outcome.kind, mutation=case.mutation,
                                  detail=outcome.detail)
            finally:
                shutil.rmtree(case_dir, ignore_errors=True)
                bar.update(1)
            out.write(json.dumps(record) + "\n")
            out.flush()
    bar.close()


def campaign(formats: list[str], cases: int, seed: int, workdir: Path, timeout: float = 20.0,
             progress: bool = True, findings: Path | None = None,
             seeds: Seeds | None = None,
             on_format: Callable[[dict[str, FormatResult]], None] | None = None,
             ) -> dict[str, FormatResult]:
    """Run ``cases`` cases of each format; returns per-format results (``on_format`` is
    called with the results so far after each format, e.g. to save them).

    Cases run in a forked child, in-process there (cheap); if a case kills it (a segfault in
    a C extension, the OOM killer), that case is recorded as ``FAIL:crash`` and a new child
    carries on with the next one.
    """
    seeds = seeds or Seeds(workdir)
    results: dict[str, FormatResult] = {}
    for fmt in formats:
        res = FormatResult()
        t0 = time.perf_counter()
        log, current = workdir / f"{fmt}.jsonl", workdir / f"{fmt}.current"
        log.unlink(missing_ok=True)
        start = 0
        while start < cases:
            current.unlink(missing_ok=True)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: run, then leave without the parent's clean-ups
                code = 0
                try:
                    _after_fork()
                    _run_cases(fmt, start, cases, seed, workdir, timeout, seeds, progress, log,
                               current)
                except BaseException:  # noqa: BLE001
                    traceback.print_exc()
                    code = 3
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                break
            if os.WIFEXITED(status):
                raise RuntimeError(f"fuzz child for {fmt} failed (exit {os.WEXITSTATUS(status)})")
            how = f"killed by signal {os.WTERMSIG(status)}"
            info = json.loads(current.read_text()) if current.exists() else {"case": start,
                                                                             "mutation": "?"}
            with open(log, "a") as out:
                out.write(json.dumps({"case": info["case"], "kind": "FAIL:crash",
                                      "mutation": info["mutation"], "detail": how}) + "\n")
            start = info["case"] + 1
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            res.outcomes[rec["kind"]] += 1
            if rec["kind"] != "skipped":
                res.cases += 1
            if rec["kind"].startswith("FAIL") or rec["kind"] == "skipped":
                res.failures.append(rec)
        res.seconds = time.perf_counter() - t0
        results[fmt] = res
        if findings is not None and fmt in CONVERTER_FORMATS + ("features",):
            _append_findings(findings, fmt, res, seed)
        if on_format is not None:
            on_format(results)
    return results


def _append_findings(path: Path, fmt: str, res: FormatResult, seed: int) -> None:
    seen: set[str] = set()
    lines = []
    old = path.read_text() if path.exists() else ""
    for f in res.failures:
        if not f["kind"].startswith("FAIL"):
            continue
        key = re.sub(r"\d+/\d+|at \d+|\b\d+\b", "N", f"{f['kind']} {f['detail']}")[:160]
        if key in seen:
            continue
        seen.add(key)
        line = (f"- {fmt}, seed {seed} case {f['case']}: {f['mutation']} -> {f['kind']}: "
                f"{f['detail']}")
        if line not in old:
            lines.append(line)
    if lines:
        with open(path, "a") as fh:
            fh.write("\n".join(lines) + "\n")


def table(results: dict[str, FormatResult]) -> str:
    kinds = ["ok", "clean"] + sorted({k for r in results.values() for k in r.outcomes
                                      if k not in ("ok", "clean")})
    rows = [["format", "cases", *kinds, "s"]]
    for fmt, r in results.items():
        rows.append([fmt, str(r.cases), *[str(r.outcomes.get(k, 0)) for k in kinds],
                     f"{r.seconds:.0f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(results: dict[str, FormatResult], args: dict[str, Any]) -> dict[str, Any]:
    return {"args": args, "formats": {
        fmt: {"cases": r.cases, "outcomes": dict(r.outcomes), "seconds": round(r.seconds, 1),
              "failures": r.failures} for fmt, r in results.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"comma-separated, from {', '.join(FORMATS)} (default all)")
    p.add_argument("--cases", type=int, default=1000, help="cases per format (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per case (default 20)")
    p.add_argument("--json", help="write the results (with every failure) as JSON")
    p.add_argument("--workdir", help="where cases run (default: a fresh temporary folder)")
    p.add_argument("--findings", default="/tmp/fuzz_findings.md",
                   help="append converter-format failures here ('' = nowhere)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    args = p.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        p.error(f"unknown format(s) {bad}; known: {', '.join(FORMATS)}")
    if args.cases < 1 or args.timeout <= 0:
        p.error("--cases and --timeout must be positive")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _limit_memory()
    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="reid-fuzz-")) if own else Path(args.workdir)
    def save(results: dict[str, FormatResult]) -> None:
        if args.json:  # after every format, so that a long campaign keeps what it has done
            from porting.outputs import atomic_write

            text = json.dumps(to_json(results, vars(args)), indent=1)
            atomic_write(args.json, lambda tmp: Path(tmp).write_text(text + "\n"))

    try:
        results = campaign(formats, args.cases, args.seed, workdir, args.timeout,
                           progress=not args.quiet,
                           findings=Path(args.findings) if args.findings else None,
                           on_format=save)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(results))
    for fmt, r in results.items():
        for f in r.failures[:5]:
            print(f"{fmt} case {f['case']}: {f['mutation']} -> {f['kind']}: {f['detail']}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
