"""What both converters share: the layer-function registry, the parameter table, the
checkpoint they write, the summary they print and the CLI error contract."""

from __future__ import annotations

import argparse
import math
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from porting.checkpoint import make_checkpoint, save_checkpoint, sha256_file
from porting.graph import GraphError, GraphModule

from .limits import DEFAULT_MAX_MEMORY_GB

CONVERTER_VERSION = "0.1.0"


class ConversionError(ValueError):
    """A source model that cannot be converted faithfully (message names file and layer)."""


class Registry:
    """Source layer type -> conversion function (onnx2torch style: one function per type)."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.functions: dict[str, Callable[..., None]] = {}

    def register(self, *types: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
        def deco(fn: Callable[..., None]) -> Callable[..., None]:
            for t in types:
                self.functions[t] = fn
            return fn
        return deco

    def get(self, layer_type: str, layer_name: str, source: str) -> Callable[..., None]:
        if layer_type not in self.functions:
            raise ConversionError(
                f"{source}: layer {layer_name!r} has unsupported type {layer_type!r}; "
                f"supported {self.framework} types: {', '.join(sorted(self.functions))}"
            )
        return self.functions[layer_type]


@dataclass
class GraphBuilder:
    """Accumulates graph layers and ONE parameter table (a shared name -> one tensor).

    A float32 C-contiguous array becomes a tensor over the same memory (no copy). Any other
    array (MatConvNet's column-major k x k filters, doubles, ...) waits until ``params`` is
    first read and is then copied, with all the others, into ONE new buffer: a single large
    allocation fills much faster than hundreds of small ones.
    """

    framework: str
    source: str
    layers: list[dict[str, Any]] = field(default_factory=list)
    param_users: Counter = field(default_factory=Counter)
    inputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _params: dict[str, torch.Tensor | None] = field(default_factory=dict, repr=False)
    _pending: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Parameter key -> float32 tensor, in registration order."""
        if self._pending:
            self._pack()
        return self._params  # type: ignore[return-value]

    def has(self, key: str) -> bool:
        return key in self._params

    def param(self, key: str, value: np.ndarray | torch.Tensor, layer: str) -> str:
        """Register a parameter under ``key``. Both sources keep ONE value per name (the
        readers resolve sharing), so a later layer naming the same key reuses that tensor;
        only its shape is checked."""
        if key in self._params:
            known = self._pending.get(key)
            before = tuple((known if known is not None else self._params[key]).shape)
            if before != tuple(np.shape(value)):
                raise ConversionError(f"{self.source}: layer {layer!r}: parameter {key!r} is "
                                      f"shared by name but has shape {tuple(np.shape(value))} "
                                      f"here and {before} before")
        elif isinstance(value, np.ndarray) and not _viewable(value):
            self._params[key] = None
            self._pending[key] = value
        else:
            self._params[key] = torch.as_tensor(value).to(torch.float32)
        self.param_users[key] += 1
        return key

    def _pack(self) -> None:
        buffer = np.empty(sum(v.size for v in self._pending.values()), dtype=np.float32)
        start = 0
        for key, value in self._pending.items():
            part = buffer[start:start + value.size].reshape(value.shape)
            np.copyto(part, value, casting="unsafe")
            self._params[key] = torch.from_numpy(part)
            start += value.size
        self._pending.clear()

    def add(self, name: str, type_: str, op: str, inputs: list[str], outputs: list[str],
            attrs: dict[str, Any] | None = None, params: dict[str, str] | None = None) -> None:
        self.layers.append({"name": name, "type": type_, "op": op, "inputs": list(inputs),
                            "outputs": list(outputs), "attrs": attrs or {},
                            "params": params or {}})

    def graph(self, outputs: list[str] | None = None) -> dict[str, Any]:
        return {"framework": self.framework, "inputs": list(self.inputs),
                "outputs": outputs or [], "layers": self.layers}

    def shared_params(self) -> dict[str, int]:
        return {k: n for k, n in self.param_users.items() if n > 1}

    def module(self, outputs: list[str] | None = None, fast: bool = False) -> GraphModule:
        """A module over the builder's tensors (shared, not copied) for checks; ``fast`` uses
        PyTorch's native convolution (same maths) instead of Caffe's im2col arithmetic."""
        graph = self.graph(outputs)
        try:
            return GraphModule(graph, self.params, conv="native" if fast else None)
        except GraphError as exc:
            raise ConversionError(f"{self.source}: {exc}") from None


def _viewable(array: np.ndarray) -> bool:
    """Whether a tensor can share the array's memory as it is."""
    flags = array.flags
    return (array.dtype == np.float32 and array.dtype.isnative and flags.c_contiguous
            and flags.writeable and flags.aligned)


def compact(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy tensors off storages they share with bytes no tensor uses any more (``torch.save``
    writes whole storages), e.g. a replaced or tied parameter's slice of a reader's buffer."""
    groups: dict[int, list[str]] = {}
    for key, t in params.items():
        groups.setdefault(t.untyped_storage().data_ptr(), []).append(key)
    out = dict(params)
    for keys in groups.values():
        tensors = [params[k] for k in keys]
        spans = {(t.data_ptr(), t.numel() * t.element_size()) for t in tensors}
        if sum(n for _, n in spans) < tensors[0].untyped_storage().nbytes():
            copies: dict[tuple[int, int], torch.Tensor] = {}
            for key, t in zip(keys, tensors, strict=True):  # same bytes: stay shared
                out[key] = copies.setdefault((t.data_ptr(), t.numel()), t.clone())
    return out


def dry_run(b: GraphBuilder, feeds: dict[str, torch.Tensor], outputs: list[str],
            where: str = "") -> None:
    """Run the graph once on ``feeds`` so that a parameter, padding or blob shape that does
    not fit is reported at conversion time, naming the file and the layer."""
    try:
        with torch.no_grad():
            b.module(outputs, fast=True).eval()(**feeds)
    except GraphError as exc:
        raise ConversionError(f"{b.source}: {exc}{where}") from None


_HASHER: ThreadPoolExecutor | None = None


def _forget_hasher() -> None:
    """A forked child has the executor but not its thread: a job submitted there would
    wait forever, so the child starts its own."""
    global _HASHER
    _HASHER = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_hasher)


def sha256_soon(path: str | Path) -> Future[str]:
    """Start hashing a file on another thread (hashlib and file reads release the GIL), so
    that the digest the checkpoint records costs no time after the conversion."""
    global _HASHER
    if _HASHER is None:
        _HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
    return _HASHER.submit(sha256_file, path)


def write_checkpoint(path: str | Path, builder: GraphBuilder, *, source_path: str | Path,
                     outputs: list[str], preprocess: dict[str, Any] | None,
                     recipe: str | None, meta: dict[str, Any], arch: dict[str, Any] | None = None,
                     arch_map: dict[str, str] | None = None,
                     source_sha256: Future[str] | None = None) -> dict[str, Any]:
    """Assemble and atomically save a converted checkpoint; returns it. ``source_sha256`` is
    the source file's digest from :func:`sha256_soon` (computed here when not given)."""
    state = {f"params.{k}": v for k, v in compact(builder.params).items()}
    ckpt = make_checkpoint(
        state, arch=arch, graph=builder.graph(outputs), preprocess=preprocess, recipe=recipe,
        source={"framework": builder.framework, "file": Path(source_path).name,
                "path": str(Path(source_path).resolve()),  # for compare --opencv
                "sha256": source_sha256.result() if source_sha256 is not None
                else sha256_file(source_path)},
        converter={"name": f"convert-{builder.framework}", "version": CONVERTER_VERSION},
        meta=meta,
    )
    if arch_map is not None:
        # The canonical model's tensors are the graph's parameters (maybe reshaped): store
        # which is which rather than the weights twice.
        ckpt["arch_map"] = {k: f"params.{v}" for k, v in arch_map.items()}
    save_checkpoint(path, ckpt)
    return ckpt


def check_graph_limits(builder: GraphBuilder, outputs: list[str]) -> None:
    """Refuse now what ``porting.load`` would refuse: the checkpoint schema's own checks (op
    attribute ranges, input counts, parameter ranks) on the graph just built, before the
    dry run and the write, so that converter and loader share one set of limits. Memory is
    the converter's ``--max-memory`` business, not checked here."""
    from porting.checkpoint_schema import CheckpointError, check_schema

    ckpt = make_checkpoint({f"params.{k}": v for k, v in builder.params.items()},
                           graph=builder.graph(outputs))
    try:
        check_schema(ckpt, builder.source, allow_nonfinite=True, memory_limit=1 << 62)
    except CheckpointError as exc:  # "<file>: graph layer 'x' (Type).attrs.f: ..." in words
        msg = str(exc).replace(": graph layer ", ": layer ", 1).replace(").attrs.", "): ", 1)
        raise ConversionError(msg) from None


def summary_table(builder: GraphBuilder, preprocess: dict[str, Any] | None,
                  mapping: str | None) -> str:
    """The tabulate summary every converter prints."""
    types = Counter(layer["type"] for layer in builder.layers)
    n_params = sum(t.numel() for t in builder.params.values())
    rows = [[t, n] for t, n in sorted(types.items())]
    out = [tabulate(rows, headers=["layer type", "count"], tablefmt="github")]
    shared = builder.shared_params()
    info = [
        ["source", builder.source],
        ["layers", len(builder.layers)],
        ["parameter tensors", len(builder.params)],
        ["parameters", f"{n_params:,}"],
        ["shared tensors (used by >1 layer)", len(shared)],
    ]
    if preprocess:
        info += [["input size", preprocess.get("input_size")],
                 ["colour", preprocess.get("colour")],
                 ["mean", _short(preprocess.get("mean"))],
                 ["resize", f"{preprocess.get('resize')} {preprocess.get('resize_method')}"]]
    info.append(["canonical model", mapping or "none (graph only)"])
    out.append(tabulate(info, tablefmt="github", headers=["", ""]))
    if builder.notes:
        out.append("\n".join(f"note: {n}" for n in builder.notes))
    return "\n\n".join(out)


def _short(v: Any) -> str:
    a = np.asarray(v) if v is not None else None
    if a is None:
        return "none"
    if a.size <= 3:
        return str([round(float(x), 4) for x in a.ravel()])
    return f"image {tuple(a.shape)}, per-channel mean {np.round(a.reshape(-1, 3).mean(0), 3)}"


def add_input_limits(p: argparse.ArgumentParser) -> None:
    """The converters' flags for input limits: the dry run's memory and non-finite weights."""
    p.add_argument("--max-memory", type=_gigabytes, default=DEFAULT_MAX_MEMORY_GB,
                   metavar="GB", help="refuse a net whose dry run is estimated to need more "
                   f"memory than this (default {DEFAULT_MAX_MEMORY_GB:g} GB)")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="convert even if some weights are NaN or Inf (refused by default; "
                   "says so on stderr)")


def _gigabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of GB, got {text!r}")
    return value


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a converter's body inside the shared error boundary (:mod:`porting.boundary`):
    a known input error is one line and exit 2; the readers' warnings are collected and
    printed as one ``warning:`` line each after a success."""
    from porting.boundary import run_cli as boundary

    return boundary(main, argv, collect_warnings=True)


#: Source files from this size on show the conversion's progress (layers converted).
BIG_FILE = 64 << 20


def layer_progress(n_layers: int, source: str | os.PathLike, enabled: bool):
    """A :class:`porting.progress.Progress` over the layers of a big source file (a summary
    line, or a bar on a terminal); silent for small files and under ``-q``."""
    from porting.progress import Progress

    try:
        big = os.path.getsize(source) >= BIG_FILE
    except OSError:
        big = False
    return Progress(n_layers, f"converting {os.path.basename(os.fspath(source))}",
                    enabled=enabled and big, unit="layer")
