"""``compare CHECKPOINT REFERENCE``: where does a port diverge from its source framework?

REFERENCE is an ``.npz`` dump (NCHW; MatConvNet fixtures key vars by name, Caffe fixtures use
``input/<blob>``, ``blob/<blob>`` and ``top/<layer>``) or a MATLAB ``.mat`` of dumped vars
(H x W x C x N). The checkpoint's graph runs on the reference inputs and every var present on
both sides is compared in graph order with ``max|ours - ref| / max|ref|``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from porting.checkpoint import atomic_write, load_checkpoint
from porting.graph import GraphModule
from porting.loading import model_from_checkpoint

from .common import ConversionError, run_cli


@dataclass
class Row:
    name: str
    shape: list[int]
    max_abs: float
    max_rel: float


def _load_reference(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".npz":
        try:
            z = np.load(path, allow_pickle=False)
            return {k: z[k] for k in z.files if not k.startswith("__")}
        except Exception as exc:
            raise ConversionError(f"{path}: not a readable .npz ({exc})") from None
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
        if a.size != b.size:
            rows.append(Row(v, list(a.shape), float("inf"), float("inf")))
            continue
        a = a.reshape(b.shape)
        diff = float(np.abs(a - b).max()) if b.size else 0.0
        scale = float(np.abs(b).max()) if b.size else 0.0
        rows.append(Row(v, list(b.shape), diff, diff / scale if scale > 0 else diff))
    return rows, order


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compare",
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
    rows, _ = compare(model, _load_reference(Path(args.reference)))
    if not rows:
        raise ConversionError("no var of the graph is present in the reference")
    table = [[r.name, "x".join(map(str, r.shape)), f"{r.max_abs:.3g}", f"{r.max_rel:.3g}",
              "ok" if r.max_rel <= args.rtol else "FAIL"] for r in rows]
    print(tabulate(table, headers=["var", "shape", "max abs", "max rel", ""],
                   tablefmt="github"))
    worst = max(rows, key=lambda r: r.max_rel)
    first_bad = next((r for r in rows if not r.max_rel <= args.rtol), None)
    print(f"\n{len(rows)} vars compared; worst {worst.name}: {worst.max_rel:.3g} relative")
    if args.json:
        payload = {"rows": [asdict(r) for r in rows], "worst": asdict(worst),
                   "rtol": args.rtol, "first_over_tolerance": first_bad and first_bad.name}
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1)))
    if first_bad is not None:
        print(f"first var over tolerance: {first_bad.name} ({first_bad.max_rel:.3g} > "
              f"{args.rtol:g})", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)
