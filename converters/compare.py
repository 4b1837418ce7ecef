"""``compare CHECKPOINT REFERENCE``: where does a port diverge from its source framework?

REFERENCE is a dump of the source framework's vars (the format the dump tools of
:mod:`porting.converters.dump` write, see the README's ``compare`` section):

* ``.npz`` (NCHW): a key is a bare var name (MatConvNet), ``input/<blob>``, ``blob/<blob>``
  (Caffe; an in-place overwritten value is ``blob/<blob>@<layer>``, as the graph names it) or
  ``top/<layer>`` (that layer's first top). An input may be stored as a seed recipe
  (``__seed__/<key>``, ``__shape__/<key>``, ``__sha256__/<key>``): it is regenerated and
  checked against its SHA-256. Other ``__``-keys are the dump's metadata.
* MATLAB ``.mat``: one variable per MatConvNet var, H x W x C x N.

The checkpoint's graph runs on the reference inputs and every reference output is compared in
graph order with ``max|ours - ref| / max|ref|``. A reference key that is not compared is
listed with the reason (no var of that name, another shape, not numeric, a graph input);
an output left unchecked fails the comparison unless ``--allow-missing``. With ``--opencv``
the reference is the checkpoint's own Caffe source run by OpenCV's dnn module
(:mod:`porting.converters.opencv_caffe`). Exit 1 when any output is over tolerance, differs
in shape or went unchecked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from porting.argtypes import positive_float, positive_int
from porting.checkpoint import load_checkpoint, sha256_file
from porting.cli import HelpFormatter, examples_epilog
from porting.graph import GraphModule
from porting.loading import model_from_checkpoint
from porting.outputs import atomic_write, check_output_file

from .common import ConversionError, run_cli
from .comparison import Comparison, NotCompared, Row, measure, seeded_array

__all__ = ["Comparison", "NotCompared", "Row", "check", "compare", "load_reference", "main",
           "measure", "seeded_array"]

#: The reason given for a reference key that names a graph input (fed, not compared).
INPUT = "a graph input (fed to the net, not compared)"


def _seeded_inputs(z: np.lib.npyio.NpzFile, path: Path) -> dict[str, np.ndarray]:
    """Inputs stored as a recipe (``__seed__/<key>``, ``__shape__/<key>`` and
    ``__sha256__/<key>``), regenerated and checked against their digest."""
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
        x = seeded_array(seed, shape)
        if hashlib.sha256(x.tobytes()).hexdigest() != digest:
            raise ConversionError(f"{path}: input {name!r} regenerated from seed {seed} does "
                                  "not match its recorded SHA-256")
        out[name] = x
    return out


def load_reference(path: Path) -> tuple[dict[str, np.ndarray], list[NotCompared]]:
    """A dump's arrays by key, and the keys that hold no numeric array (with the reason)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    skipped: list[NotCompared] = []
    if path.suffix == ".npz":
        try:
            z = np.load(path, allow_pickle=False)
            arrays = {k: z[k] for k in z.files if not k.startswith("__")}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ConversionError(f"{path}: not a readable .npz ({exc})") from None
        for name, x in _seeded_inputs(z, path).items():
            arrays.setdefault(name, x)
        for k in [k for k, a in arrays.items() if a.dtype.kind not in "fiub"]:
            skipped.append(NotCompared(k, f"dtype {arrays.pop(k).dtype} is not numeric"))
        return arrays, skipped
    from .matfile import MatCell, MatStruct, load_mat

    out = {}
    for k, v in load_mat(path).items():
        if isinstance(v, MatCell) or isinstance(v, MatStruct) or not isinstance(v, np.ndarray):
            kind = ("a cell array" if isinstance(v, MatCell) else "a struct"
                    if isinstance(v, MatStruct) else "a char array" if isinstance(v, str | list)
                    else type(v).__name__)
            skipped.append(NotCompared(k, f"{kind}, not a numeric array"))
        elif v.dtype.kind not in "fiub":
            skipped.append(NotCompared(k, f"MATLAB class {v.dtype} is not numeric"))
        else:
            a = np.asarray(v, dtype=np.float32)
            if a.ndim >= 3 or (a.ndim == 2 and min(a.shape) > 1):
                a = a.reshape(a.shape + (1,) * (4 - a.ndim)).transpose(3, 2, 0, 1)
            out[k] = a
    return out, skipped


def _reference_map(graph: dict[str, Any], ref: Mapping[str, np.ndarray]
                   ) -> tuple[dict[str, list[str]], list[NotCompared]]:
    """Our var name -> the reference keys holding it; the keys that name no var, and why."""
    by_layer = {layer["name"]: layer for layer in graph["layers"]}
    known = set(graph["inputs"]) | {v for layer in graph["layers"] for v in layer["outputs"]}
    mapping: dict[str, list[str]] = {}
    skipped = []
    for key in ref:
        var, reason = None, None
        if key.startswith(("input/", "blob/")) or "/" not in key:
            var = key.split("/", 1)[1] if "/" in key else key
            if var not in known:
                reason = _no_such("var", var, known)
        elif key.startswith("top/"):
            layer = by_layer.get(key[4:])
            if layer is None:
                reason = _no_such("layer", key[4:], by_layer)
            elif not layer["outputs"]:
                reason = f"layer {key[4:]!r} has no output"
            else:
                var = layer["outputs"][0]
        else:
            reason = (f"unknown key prefix {key.split('/', 1)[0] + '/'!r} (expected input/, "
                      "blob/, top/ or a bare var name)")
        if reason is not None:
            skipped.append(NotCompared(key, reason))
        elif var in graph["inputs"]:
            skipped.append(NotCompared(key, INPUT, input=True))
        else:
            mapping.setdefault(var, []).append(key)
    return mapping, skipped


def _no_such(what: str, name: str, known: Any) -> str:
    close = [k for k in known if k.lower() == name.lower()]
    return f"no {what} of that name" + (f" (did you mean {close[0]!r}?)" if close else "")


def _feeds(model: GraphModule, ref: Mapping[str, np.ndarray], mapping_in: dict[str, str]
           ) -> dict[str, torch.Tensor]:
    feeds = {}
    for v in model.inputs:
        if v not in mapping_in:
            continue
        a = ref[mapping_in[v]]
        feeds[v] = torch.from_numpy(np.ascontiguousarray(a.reshape(-1) if a.ndim <= 2 and
                                                         min(a.shape, default=1) <= 1 else a))
    return feeds


def check(model: GraphModule, ref: Mapping[str, np.ndarray]) -> tuple[Comparison,
                                                                     dict[str, torch.Tensor]]:
    """Run ``model`` on the reference inputs and compare every reference output; the
    comparison and the feeds it ran on."""
    mapping, skipped = _reference_map(model.graph, ref)
    inputs = {}
    for n in skipped:
        if n.input:
            inputs.setdefault(n.key.split("/", 1)[-1], n.key)
    order = [v for v in model.var_names() if v in mapping]
    feeds = _feeds(model, ref, inputs)
    missing = [v for v in model.needed(set(order), given=set(feeds)) if v in model.inputs
               and v not in feeds] if order else []
    if missing:
        raise ConversionError(f"the reference has no value for graph input(s) {missing}")
    with torch.no_grad():
        ours = model(**feeds, outputs=order) if order else {}
    rows = measure(ours, ref, [(v, k) for v in order for k in mapping[v]])
    return Comparison(rows, skipped, order), feeds


def compare(model: GraphModule, ref: dict[str, np.ndarray]) -> tuple[list[Row], list[str]]:
    """Rows for every reference output that is a var of the graph, in graph order."""
    comparison, _ = check(model, ref)
    return comparison.rows, comparison.order


def channel_hint(model: GraphModule, feeds: dict[str, torch.Tensor], row: Row,
                 ref: Mapping[str, np.ndarray], rtol: float) -> str | None:
    """When the first var over tolerance is a convolution of a 3-channel graph input and
    it passes with that input's channels reversed: say that the colour orders differ."""
    layer = next((la for la in model.graph["layers"] if row.name in la["outputs"]), None)
    if layer is None or layer["op"] != "conv" or not layer["inputs"]:
        return None
    x = feeds.get(layer["inputs"][0])
    if x is None or x.dim() != 4 or x.shape[1] != 3:
        return None
    with torch.no_grad():
        y = model(**{**feeds, layer["inputs"][0]: x.flip(1)}, outputs=[row.name])[row.name]
    flipped = measure({row.name: y}, ref, [(row.name, row.key)])[0]
    if flipped.status == "ok" and flipped.max_rel <= rtol:
        return (f"{row.name} agrees ({flipped.max_rel:.3g} relative) when the input's colour "
                f"channels are reversed: the checkpoint and the reference disagree on the "
                f"channel order (e.g. a checkpoint converted with --rgb against a BGR dump)")
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting compare",
        epilog=examples_epilog("compare"), formatter_class=HelpFormatter,
        description="Run a converted checkpoint on a reference dump's inputs (or, with "
        "--opencv, beside its own Caffe source run by OpenCV) and compare every output (max "
        "|ours-ref| / max |ref| per tensor); every reference key not compared is listed.",
    )
    p.add_argument("checkpoint", help="a reid-porting checkpoint (.pth) made by a converter")
    p.add_argument("reference", nargs="?",
                   help="reference dump: .npz (NCHW) or MATLAB .mat (HxWxCxN); not with --opencv")
    p.add_argument("--rtol", type=positive_float, default=1e-4,
                   help="maximum relative error per tensor (default 1e-4)")
    p.add_argument("--allow-missing", action="store_true",
                   help="exit 0 even if some reference outputs could not be compared (they "
                   "are still listed)")
    p.add_argument("--json", metavar="FILE", help="write the rows, the keys not compared and "
                   "the worst var as JSON")
    p.add_argument("--record", action="store_true",
                   help="store the agreement summary in the checkpoint (measurement "
                   "'compare', for its model card)")
    o = p.add_argument_group("independent runtime (Caffe checkpoints)")
    o.add_argument("--opencv", action="store_true",
                   help="run the checkpoint's source prototxt + caffemodel in OpenCV's dnn "
                   "module and compare every blob")
    o.add_argument("--prototxt", help="the source prototxt (default: the path recorded at "
                   "conversion, checked against its SHA-256)")
    o.add_argument("--caffemodel", help="the source caffemodel (default: the recorded path, "
                   "checked against its SHA-256)")
    o.add_argument("--input", nargs="+", metavar="IMAGE",
                   help="images, in the checkpoint's preprocessing, one per batch item "
                   "(default: a seeded random input of the checkpoint's input size)")
    o.add_argument("--batch", type=positive_int, default=2,
                   help="batch size of the seeded input (default 2)")
    o.add_argument("--seed", type=int, default=0, help="seed of the seeded input (default 0)")
    return p


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.opencv == (args.reference is not None):
        parser.error("give a reference dump or --opencv, not both")
    if not args.opencv and (args.prototxt or args.caffemodel or args.input):
        parser.error("--prototxt, --caffemodel and --input go with --opencv")
    check_output_file(args.json, "--json")  # before anything runs
    ckpt = load_checkpoint(args.checkpoint)
    if ckpt.get("graph") is None:
        raise ConversionError(f"{args.checkpoint}: no converted graph to compare (it was not "
                              "made by convert-matconvnet or convert-caffe)")
    model = model_from_checkpoint(ckpt, canonical=False)
    hint = None
    if args.opencv:
        from .opencv_caffe import compare_opencv

        comparison, source = compare_opencv(ckpt, args, model)
        where = f"OpenCV {source['opencv']} on {source['prototxt']}"
    else:
        path = Path(args.reference)
        try:
            ref, skipped = load_reference(path)
            comparison, feeds = check(model, ref)
        except ConversionError as exc:
            if str(exc).startswith(str(args.reference)):
                raise
            raise ConversionError(f"{args.reference}: {exc}") from None
        comparison.not_compared[:0] = skipped
        if not comparison.rows:
            first = next(iter(comparison.unchecked), None)
            raise ConversionError(
                f"{args.reference}: none of its {comparison.outputs} outputs is a var of the "
                "graph" + (f" ({first.key!r}: {first.reason})" if first else ""))
        source = {"reference": str(path), "sha256": sha256_file(path)}
        where = str(path)
        bad = _first_bad(comparison, args.rtol)
        if bad is not None and bad.status == "FAIL":
            hint = channel_hint(model, feeds, bad, ref, args.rtol)
    return report(comparison, args, source, where, hint)


def _first_bad(comparison: Comparison, rtol: float) -> Row | None:
    for r in comparison.rows:
        if r.status == "ok" and not r.max_rel <= rtol:  # NaN is over tolerance too
            r.status = "FAIL"
    return next((r for r in comparison.rows if r.status not in ("ok", "fp32")), None)


def report(comparison: Comparison, args: argparse.Namespace, source: dict[str, Any],
           where: str, hint: str | None = None) -> int:
    """Print the table, the keys not compared and the summary; write ``--json`` and
    ``--record``; the exit status (1: over tolerance, another shape, or an output not
    compared without ``--allow-missing``)."""
    rows, rtol = comparison.rows, args.rtol
    first_bad = _first_bad(comparison, rtol)
    table = [[r.name if r.key in (r.name, "") or r.key.endswith("/" + r.name)
              else f"{r.name} ({r.key})", _dims(r.shape), _dims(r.ref_shape), _num(r.max_ref),
              _num(r.max_abs), _num(r.max_rel), r.status] for r in rows]
    print(tabulate(table, headers=["var", "ours", "reference", "max abs(ref)", "max abs",
                                   "max rel", "status"], tablefmt="github"))
    if comparison.not_compared:
        print("\nnot compared:")
        print(tabulate([[n.key, n.reason] for n in comparison.not_compared],
                       headers=["reference key", "reason"], tablefmt="github"))
    compared = comparison.compared
    worst = max(compared, key=lambda r: (math.isnan(r.max_rel), r.max_rel), default=None)
    shapes = [r for r in rows if r.status == "SHAPE"]
    unchecked = comparison.unchecked
    summary = f"\n{len(compared)} of {comparison.outputs} outputs compared against {where}"
    if worst is not None:
        summary += f"; worst {worst.name}: {worst.max_rel:.3g} relative"
    if shapes:
        summary += f"; {len(shapes)} with a different shape"
    if unchecked:
        summary += f"; {len(unchecked)} not compared"
    rounding = [r.name for r in rows if r.status == "fp32"]
    if rounding:
        summary += (f"\n{len(rounding)} over --rtol within float32 rounding (fp32: the "
                    "reference is as close to the graph run in float64 as our float32 run)")
    print(summary)
    missing_fails = bool(unchecked) and not args.allow_missing
    passed = first_bad is None and not missing_fails
    payload = {"rows": [asdict(r) for r in rows], "worst": worst and asdict(worst),
               "rtol": rtol, "first_over_tolerance": first_bad and first_bad.name,
               "shape_mismatches": [r.name for r in shapes],
               "not_compared": [asdict(n) for n in comparison.not_compared],
               "compared": len(compared), "outputs": comparison.outputs,
               "allow_missing": args.allow_missing, "passed": passed, "source": source,
               "channel_hint": hint}
    if args.json:
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1)))
    if args.record:
        _record(args.checkpoint, payload)
    if first_bad is not None:
        if first_bad.status == "SHAPE":
            print(f"first var that differs: {first_bad.name} has shape "
                  f"{_dims(first_bad.shape)} here and {_dims(first_bad.ref_shape)} in the "
                  "reference", file=sys.stderr)
        else:
            print(f"first var over tolerance: {first_bad.name} ({first_bad.max_rel:.3g} > "
                  f"{rtol:g})", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
    if missing_fails:
        names = ", ".join(repr(n.key) for n in unchecked[:5])
        more = f" and {len(unchecked) - 5} more" if len(unchecked) > 5 else ""
        print(f"{len(unchecked)} reference output(s) not compared: {names}{more} (reasons "
              "above); --allow-missing accepts that", file=sys.stderr)
    return 0 if passed else 1


def _record(checkpoint: str, payload: dict[str, Any]) -> None:
    """The agreement summary as the checkpoint's ``compare`` measurement."""
    from porting.checkpoint import record_measurement

    def finite(x: float | None) -> float | str | None:
        return x if x is None or math.isfinite(x) else str(x)

    record_measurement(checkpoint, "compare", {
        "compared": payload["compared"], "outputs": payload["outputs"],
        "rtol": payload["rtol"], "passed": payload["passed"], "source": payload["source"],
        "worst_relative_error": {r["name"]: finite(r["max_rel"]) for r in payload["rows"]},
        "not_compared": {n["key"]: n["reason"] for n in payload["not_compared"]
                         if not n["input"]},
    })


def _dims(shape: list[int] | None) -> str:
    return "-" if shape is None else "x".join(map(str, shape)) or "scalar"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)
