"""``compare CHECKPOINT REFERENCE``: where does a port diverge from its source framework?

REFERENCE is an ``.npz`` dump (NCHW; MatConvNet fixtures key vars by name, Caffe fixtures use
``input/<blob>``, ``blob/<blob>`` and ``top/<layer>``) or a MATLAB ``.mat`` of dumped vars
(H x W x C x N). An input stored as a seed recipe (``__seed__/<key>``, as the trimmed Caffe
fixtures keep ``input/data``) is regenerated and checked against its SHA-256. The checkpoint's
graph runs on the reference inputs and every var present on both sides is compared in graph
order with ``max|ours - ref| / max|ref|``; a var whose shape differs (singleton dims aside) is
reported as ``SHAPE`` with both shapes. Exit 1 when any var is over tolerance or differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from porting.checkpoint import load_checkpoint
from porting.cli import HelpFormatter, examples_epilog
from porting.graph import GraphModule
from porting.loading import model_from_checkpoint
from porting.outputs import atomic_write

from .common import ConversionError, run_cli


@dataclass
class Row:
    """One var: our shape and the reference's; errors are None when the shapes differ."""

    name: str
    shape: list[int]
    max_abs: float | None
    max_rel: float | None
    ref_shape: list[int] | None = None
    status: str = "ok"  # "ok", "FAIL" (over rtol) or "SHAPE" (shapes differ)


def _seeded_inputs(z: np.lib.npyio.NpzFile, path: Path) -> dict[str, np.ndarray]:
    """Inputs stored as a recipe (the Caffe fixtures: ``__seed__/<key>``, ``__shape__/<key>``
    and ``__sha256__/<key>`` for ``RandomState(seed).uniform(-128, 128, shape)`` in float32,
    see tests/fixtures/trim_models.py), regenerated and checked against their digest."""
    out = {}
    for key in z.files:
        if not key.startswith("__seed__/"):
            continue
        name = key[len("__seed__/"):]
        try:
            seed = int(z[key])
            shape = tuple(int(d) for d in z[f"__shape__/{name}"])
            digest = str(z[f"__sha256__/{name}"])
        except (KeyError, TypeError, ValueError):
            raise ConversionError(f"{path}: input {name!r} has a seed but no valid "
                                  "__shape__/__sha256__ entries") from None
        if any(d < 1 for d in shape) or math.prod(shape) > 2**28:
            raise ConversionError(f"{path}: input {name!r} has an implausible shape {shape}")
        x = np.random.RandomState(seed).uniform(-128, 128, shape).astype(np.float32)
        if hashlib.sha256(x.tobytes()).hexdigest() != digest:
            raise ConversionError(f"{path}: input {name!r} regenerated from seed {seed} does "
                                  "not match its recorded SHA-256")
        out[name] = x
    return out


def _load_reference(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".npz":
        try:
            z = np.load(path, allow_pickle=False)
            arrays = {k: z[k] for k in z.files if not k.startswith("__")}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ConversionError(f"{path}: not a readable .npz ({exc})") from None
        for name, x in _seeded_inputs(z, path).items():
            arrays.setdefault(name, x)
        return arrays
    from .matfile import load_mat

    data = load_mat(path)
    out = {}
    for k, v in data.items():
        if isinstance(v, np.ndarray) and v.dtype.kind in "fiub":
            a = np.asarray(v, dtype=np.float32)
            if a.ndim >= 3 or (a.ndim == 2 and min(a.shape) > 1):
                a = a.reshape(a.shape + (1,) * (4 - a.ndim)).transpose(3, 2, 0, 1)
            out[k] = a
    return out


def _reference_map(graph: dict[str, Any], ref: dict[str, np.ndarray]) -> dict[str, str]:
    """Our var name -> reference key, for every var the reference holds."""
    by_layer = {layer["name"]: layer for layer in graph["layers"]}
    mapping: dict[str, str] = {}
    for key in ref:
        if key.startswith(("input/", "blob/")):
            mapping.setdefault(key.split("/", 1)[1], key)
        elif key.startswith("top/"):
            layer = by_layer.get(key[4:])
            if layer and layer["outputs"]:
                mapping[layer["outputs"][0]] = key
        elif "/" not in key:
            mapping[key] = key
    return mapping


def compare(model: GraphModule, ref: dict[str, np.ndarray]) -> tuple[list[Row], list[str]]:
    """Run ``model`` on the reference inputs; rows for every shared var in graph order."""
    mapping = _reference_map(model.graph, ref)
    missing = [v for v in model.inputs if v not in mapping]
    if missing:
        raise ConversionError(f"the reference has no value for graph input(s) {missing}")
    feeds = {}
    for v in model.inputs:
        a = ref[mapping[v]]
        feeds[v] = torch.from_numpy(np.ascontiguousarray(a.reshape(-1) if a.ndim <= 2 and
                                                         min(a.shape, default=1) <= 1 else a))
    order = [v for v in model.var_names() if v in mapping and v not in model.inputs]
    with torch.no_grad():
        ours = model(**feeds, outputs=order)
    rows = []
    for v in order:
        a = ours[v].detach().double().numpy()
        b = ref[mapping[v]].astype(np.float64)
        if _squeezed(a.shape) != _squeezed(b.shape):
            rows.append(Row(v, list(a.shape), None, None, list(b.shape), "SHAPE"))
            continue
        a = a.reshape(b.shape)
        diff = float(np.abs(a - b).max()) if b.size else 0.0
        scale = float(np.abs(b).max()) if b.size else 0.0
        rows.append(Row(v, list(a.shape), diff, diff / scale if scale > 0 else diff,
                        list(b.shape)))
    return rows, order


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without its singleton dims: MATLAB dumps keep H x W x C x N with trailing 1s
    where our graph has N x C."""
    return tuple(d for d in shape if d != 1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting compare",
        epilog=examples_epilog("compare"), formatter_class=HelpFormatter,
        description="Run a converted checkpoint on a reference dump's inputs and compare "
        "every var present on both sides (max |ours-ref| / max |ref| per tensor).",
    )
    p.add_argument("checkpoint", help="a reid-porting checkpoint (.pth) made by a converter")
    p.add_argument("reference", help="reference dump: .npz (NCHW) or MATLAB .mat (HxWxCxN)")
    p.add_argument("--rtol", type=float, default=1e-4,
                   help="maximum relative error per tensor (default 1e-4)")
    p.add_argument("--json", metavar="FILE", help="write the rows and the worst var as JSON")
    return p


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    if ckpt.get("graph") is None:
        raise ConversionError(f"{args.checkpoint}: no converted graph to compare (it was not "
                              "made by convert-matconvnet or convert-caffe)")
    model = model_from_checkpoint(ckpt, canonical=False)
    try:
        rows, _ = compare(model, _load_reference(Path(args.reference)))
    except ConversionError as exc:
        if str(exc).startswith(str(args.reference)):
            raise
        raise ConversionError(f"{args.reference}: {exc}") from None
    if not rows:
        raise ConversionError(f"{args.reference}: no var of the graph is present in the "
                              "reference")
    for r in rows:
        if r.status == "ok" and not r.max_rel <= args.rtol:  # NaN is over tolerance too
            r.status = "FAIL"
    table = [[r.name, _dims(r.shape), _dims(r.ref_shape), _num(r.max_abs), _num(r.max_rel),
              r.status] for r in rows]
    print(tabulate(table, headers=["var", "ours", "reference", "max abs", "max rel", ""],
                   tablefmt="github"))
    compared = [r for r in rows if r.status != "SHAPE"]
    worst = max(compared, key=lambda r: r.max_rel, default=None)
    first_bad = next((r for r in rows if r.status != "ok"), None)
    shapes = [r for r in rows if r.status == "SHAPE"]
    summary = f"\n{len(rows)} vars compared"
    if worst is not None:
        summary += f"; worst {worst.name}: {worst.max_rel:.3g} relative"
    if shapes:
        summary += f"; {len(shapes)} with a different shape"
    print(summary)
    if args.json:
        payload = {"rows": [asdict(r) for r in rows], "worst": worst and asdict(worst),
                   "rtol": args.rtol, "first_over_tolerance": first_bad and first_bad.name,
                   "shape_mismatches": [r.name for r in shapes]}
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1)))
    if first_bad is not None:
        if first_bad.status == "SHAPE":
            print(f"first var that differs: {first_bad.name} has shape "
                  f"{_dims(first_bad.shape)} here and {_dims(first_bad.ref_shape)} in the "
                  "reference", file=sys.stderr)
        else:
            print(f"first var over tolerance: {first_bad.name} ({first_bad.max_rel:.3g} > "
                  f"{args.rtol:g})", file=sys.stderr)
        return 1
    return 0


def _dims(shape: list[int] | None) -> str:
    return "-" if shape is None else "x".join(map(str, shape)) or "scalar"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)
