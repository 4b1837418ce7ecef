"""``convert-matconvnet model.mat -o model.pth``.

Reads DagNN (top level or under ``net`` as cnn_train_dag saves it), the importer's layout and
SimpleNN, MAT v5/v7 or v7.3, and builds a graph with MatConvNet's exact semantics. Var names
are MatConvNet's (``conv1x``, ``res4fx``, ``pool5``...), parameter names too
(``conv1_filter``); a parameter listed by several layers (the two streams of the paper's
network) is ONE tensor.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from porting.cli import HelpFormatter, examples_epilog

from . import common
from .common import (
    ConversionError,
    GraphBuilder,
    Registry,
    add_input_limits,
    run_cli,
    sha256_soon,
    summary_table,
    write_checkpoint,
)
from .limits import DEFAULT_MAX_MEMORY_GB
from .matconvnet_model import MCNLayer, MCNModel, read_matconvnet
from .matconvnet_spec import check_model, nonfinite_note

LAYERS = Registry("matconvnet")

# MATLAB H x W x C x N dimension (1-based) -> PyTorch N x C x H x W axis.
MATLAB_DIM = {1: 2, 2: 3, 3: 1, 4: 0}


class Ctx:
    def __init__(self, model: MCNModel) -> None:
        self.model = model
        self.source = model.source_path
        self.b = GraphBuilder("matconvnet", self.source)

    def err(self, layer: MCNLayer, msg: str) -> ConversionError:
        return ConversionError(f"{self.source}: layer {layer.name!r} ({layer.type}): {msg}")

    def value(self, layer: MCNLayer, i: int, what: str) -> np.ndarray:
        if i >= len(layer.params):
            raise self.err(layer, f"needs a {what} parameter (params has {len(layer.params)})")
        name = layer.params[i]
        if name not in self.model.params:
            raise self.err(layer, f"parameter {name!r} ({what}) is not in the file")
        return np.asarray(self.model.params[name].value, dtype=np.float32)

    def param(self, layer: MCNLayer, i: int, array: np.ndarray) -> str:
        return self.b.param(layer.params[i], array, layer.name)

    def add(self, layer: MCNLayer, op: str, attrs: dict[str, Any] | None = None,
            params: dict[str, str] | None = None) -> None:
        self.b.add(layer.name, layer.type, op, layer.inputs, layer.outputs, attrs, params)


def _flat_ints(v: Any) -> list[int]:
    """The integers the spec check accepted (a scalar, a list, 1-element arrays), flat."""
    items = list(v) if isinstance(v, list | tuple) else np.asarray(v).reshape(-1).tolist()
    return [int(np.asarray(x).reshape(-1)[0]) for x in items]


def _pair(v: Any, default: int) -> list[int]:
    if v is None:
        return [default, default]
    v = _flat_ints(v)
    return v * 2 if len(v) == 1 else v[:2]


def _pad4(v: Any) -> list[int]:
    if v is None:
        return [0, 0, 0, 0]
    v = _flat_ints(v)
    if len(v) == 1:
        return v * 4
    if len(v) == 4:
        return v
    raise ValueError(f"pad must have 1 or 4 values, got {v}")


@LAYERS.register("dagnn.Conv")
def _conv(layer: MCNLayer, ctx: Ctx) -> None:
    f = ctx.value(layer, 0, "filter")
    f = f.reshape(f.shape + (1,) * (4 - f.ndim))
    size = layer.block.get("size")
    if size is not None and len(size) == 4 and list(f.shape) != [int(s) for s in size]:
        raise ctx.err(layer, f"filter {layer.params[0]!r} has size {list(f.shape)} but the "
                             f"layer's block.size is {list(size)}")
    params = {"weight": ctx.param(layer, 0, f.transpose(3, 2, 0, 1))}
    has_bias = layer.block.get("hasBias", len(layer.params) > 1)
    if has_bias:
        bias = ctx.value(layer, 1, "bias")
        if bias.size != f.shape[3]:
            raise ctx.err(layer, f"bias {layer.params[1]!r} has {bias.size} values for "
                                 f"{f.shape[3]} filters")
        params["bias"] = ctx.param(layer, 1, bias.reshape(-1))
    try:
        attrs = {"pad": _pad4(layer.block.get("pad")),
                 "stride": _pair(layer.block.get("stride"), 1),
                 "dilation": _pair(layer.block.get("dilate"), 1), "groups": None}
    except ValueError as exc:
        raise ctx.err(layer, str(exc)) from None
    ctx.add(layer, "conv", attrs, params)


@LAYERS.register("dagnn.BatchNorm")
def _bnorm(layer: MCNLayer, ctx: Ctx) -> None:
    mult, bias = ctx.value(layer, 0, "mult"), ctx.value(layer, 1, "bias")
    moments = ctx.value(layer, 2, "moments")
    c = mult.size
    if bias.size != c or moments.size != 2 * c:
        raise ctx.err(layer, f"mult/bias/moments sizes {mult.size}/{bias.size}/"
                             f"{list(moments.shape)} do not describe {c} channels "
                             "(moments must be C x 2 [mean sigma])")
    params = {"mult": ctx.param(layer, 0, mult.reshape(-1)),
              "bias": ctx.param(layer, 1, bias.reshape(-1)),
              "moments": ctx.param(layer, 2, moments.reshape(c, 2))}
    ctx.add(layer, "mcn_bn", {"eps": float(layer.block.get("epsilon", 1e-5))}, params)


@LAYERS.register("dagnn.ReLU")
def _relu(layer: MCNLayer, ctx: Ctx) -> None:
    ctx.add(layer, "relu", {"negative_slope": float(layer.block.get("leak", 0.0) or 0.0)})


@LAYERS.register("dagnn.Pooling")
def _pool(layer: MCNLayer, ctx: Ctx) -> None:
    method = layer.block.get("method", "max")
    if method not in ("max", "avg"):
        raise ctx.err(layer, f"pooling method {method!r} is not max or avg")
    try:
        attrs = {"method": method, "pool_size": _pair(layer.block.get("poolSize"), 1),
                 "stride": _pair(layer.block.get("stride"), 1),
                 "pad": _pad4(layer.block.get("pad"))}
    except ValueError as exc:
        raise ctx.err(layer, str(exc)) from None
    ctx.add(layer, "mcn_pool", attrs)


@LAYERS.register("dagnn.LRN")
def _lrn(layer: MCNLayer, ctx: Ctx) -> None:
    param = [float(p) for p in np.atleast_1d(layer.block.get("param", [5, 1, 1e-4, 0.75]))]
    if len(param) != 4:
        raise ctx.err(layer, f"param must be [N kappa alpha beta], got {param}")
    ctx.add(layer, "mcn_lrn", {"param": param})


@LAYERS.register("dagnn.Sum")
def _sum(layer: MCNLayer, ctx: Ctx) -> None:
    ctx.add(layer, "sum")


@LAYERS.register("dagnn.Concat")
def _concat(layer: MCNLayer, ctx: Ctx) -> None:
    dim = int(layer.block.get("dim", 3))
    if dim not in MATLAB_DIM:
        raise ctx.err(layer, f"Concat dim {dim} is not one of 1..4")
    ctx.add(layer, "concat", {"axis": MATLAB_DIM[dim]})


@LAYERS.register("dagnn.DropOut")
def _dropout(layer: MCNLayer, ctx: Ctx) -> None:
    ctx.add(layer, "dropout", {"rate": float(layer.block.get("rate", 0.5))})


@LAYERS.register("dagnn.Square")
def _square(layer: MCNLayer, ctx: Ctx) -> None:
    """The authors' ``dagnn.Square``: ``(x1 - x2).^2`` of the two streams."""
    if len(layer.inputs) != 2:
        raise ctx.err(layer, f"Square takes 2 inputs, got {len(layer.inputs)}")
    ctx.add(layer, "square_diff")


@LAYERS.register("dagnn.SoftMax")
def _softmax(layer: MCNLayer, ctx: Ctx) -> None:
    ctx.add(layer, "softmax", {"axis": 1})


@LAYERS.register("dagnn.Sigmoid")
def _sigmoid(layer: MCNLayer, ctx: Ctx) -> None:
    ctx.add(layer, "sigmoid")


@LAYERS.register("dagnn.Scale")
def _scale(layer: MCNLayer, ctx: Ctx) -> None:
    w = ctx.value(layer, 0, "scale")
    w3 = w.reshape(w.shape + (1,) * (3 - w.ndim)) if w.ndim < 3 else w
    params = {"weight": ctx.param(layer, 0, w3.transpose(2, 0, 1))}
    if layer.block.get("hasBias", len(layer.params) > 1):
        b = ctx.value(layer, 1, "bias")
        b3 = b.reshape(b.shape + (1,) * (3 - b.ndim)) if b.ndim < 3 else b
        params["bias"] = ctx.param(layer, 1, b3.transpose(2, 0, 1))
    ctx.add(layer, "scale", {"axis": 1}, params)


LOSSES = {"softmaxlog": "softmax_loss", "classerror": "class_error", "topkerror": "topk_error"}


@LAYERS.register("dagnn.Loss")
def _loss(layer: MCNLayer, ctx: Ctx) -> None:
    kind = layer.block.get("loss", "softmaxlog")
    if kind not in LOSSES:
        raise ctx.err(layer, f"loss {kind!r} is not supported; supported: {sorted(LOSSES)}")
    if len(layer.inputs) != 2:
        raise ctx.err(layer, "a Loss takes a prediction and a label (instance weights are "
                             "not supported)")
    attrs: dict[str, Any] = {"label_offset": 1}  # MatConvNet labels are 1-based
    if kind == "softmaxlog":
        attrs["reduction"] = "sum"  # vl_nnloss sums over images and positions
    if kind == "topkerror":
        opts = layer.block.get("opts") or []
        attrs["topk"] = int(opts[opts.index("topK") + 1]) if "topK" in opts else 5
    ctx.add(layer, LOSSES[kind], attrs)


def convert(path: str | os.PathLike, test_head: bool = True, *, allow_nonfinite: bool = False,
            max_memory_gb: float = DEFAULT_MAX_MEMORY_GB,
            progress: bool = False) -> tuple[GraphBuilder, MCNModel]:
    """Build the graph of a MatConvNet model file, once :func:`matconvnet_spec.check_model`
    has checked it (block properties, param sizes, inputs/outputs, non-finite params, the
    dry run's memory)."""
    model = read_matconvnet(path)
    checked = check_model(model, allow_nonfinite=allow_nonfinite, max_memory_gb=max_memory_gb)
    ctx = Ctx(model)
    note = nonfinite_note(checked)
    if note:
        ctx.b.notes.append(note)
        print(f"warning: {note}", file=sys.stderr)
    produced = {v for layer in model.layers for v in layer.outputs}
    for layer in model.layers:
        for v in layer.inputs:
            if v not in produced and v not in ctx.b.inputs:
                ctx.b.inputs.append(v)
    with common.layer_progress(len(model.layers), path, progress) as bar:
        for layer in model.layers:
            LAYERS.get(layer.type, layer.name, ctx.source)(layer, ctx)
            bar.update(1)
    names = {v for layer in ctx.b.layers for v in layer["outputs"]}
    if test_head and "pool5" in names and "pool5n" not in names:
        # test/test_gallery_query_crazy.m adds this after loading: exact L2 over channels.
        ctx.b.add("lrn_test", "dagnn.LRN", "mcn_lrn", ["pool5"], ["pool5n"],
                  {"param": [4096.0, 0.0, 1.0, 0.5]})
        ctx.b.notes.append("added the paper's test-time head lrn_test = dagnn.LRN([4096 0 1 "
                           "0.5]) on pool5 -> pool5n (not part of the file)")
    return ctx.b, model


def default_outputs(b: GraphBuilder) -> list[str]:
    consumed = {v for layer in b.layers for v in layer["inputs"]}
    return [v for layer in b.layers for v in layer["outputs"]
            if v not in consumed and layer["name"] != "lrn_test"]


def is_two_stream(b: GraphBuilder) -> bool:
    types = {layer["type"] for layer in b.layers}
    names = {layer["name"] for layer in b.layers}
    return "dagnn.Square" in types and "fc9" in names


def preprocess_for(model: MCNModel, two_stream: bool) -> dict[str, Any]:
    """From ``meta.normalization`` (averageImage RGB 0-255, imageSize, interpolation)."""
    try:
        return _preprocess_for(model, two_stream)
    except (ValueError, TypeError) as exc:  # the file's values, refused by Preprocess
        raise common.ConversionError(
            f"{model.source_path}: meta.normalization: {exc}") from None


def _preprocess_for(model: MCNModel, two_stream: bool) -> dict[str, Any]:
    from porting.checkpoint_schema import MAX_SIDE
    from porting.preprocess import Preprocess, market_matconvnet

    norm = model.meta.get("normalization", {}) or {}
    avg = norm.get("averageImage")
    mean = np.zeros(3) if avg is None or np.size(avg) == 0 else np.asarray(avg, np.float64)
    if not (mean.size == 3 or (mean.ndim == 3 and mean.shape[2] == 3)):
        raise ValueError(f"averageImage must hold 3 RGB values or be H x W x 3, got shape "
                         f"{mean.shape}")
    if not np.all(np.isfinite(mean)):
        raise ValueError("averageImage holds NaN or Inf")
    if two_stream:
        spec = market_matconvnet().to_dict()
        spec["mean"] = mean.reshape(-1, 3).tolist()[0] if mean.size == 3 else mean.tolist()
        spec["source"] += f"; mean from {Path(model.source_path).name} meta.normalization"
        return Preprocess.from_dict(spec).to_dict()
    raw = np.asarray(norm.get("imageSize") if norm.get("imageSize") is not None
                     else [224, 224], np.float64).reshape(-1)
    if raw.size < 2 or not np.all(np.isfinite(raw[:2])) or np.any(raw[:2] != np.round(raw[:2])) \
            or not np.all((raw[:2] >= 1) & (raw[:2] <= MAX_SIDE)):
        raise ValueError(f"imageSize must start with 2 integers in 1..{MAX_SIDE}, got "
                         f"{raw[:4].tolist()}")
    size = [int(s) for s in raw[:2]]
    return Preprocess(
        input_size=tuple(size), resize=tuple(size), resize_method="matlab-bicubic",
        crop="none", mean=mean.reshape(3) if mean.size == 3 else mean,
        mean_resize="matlab-bicubic-float", colour="RGB", value_range=255.0,
        source=f"{Path(model.source_path).name} meta.normalization (interpolation "
               f"{norm.get('interpolation', 'bicubic')}); RGB 0-255 minus averageImage",
    ).to_dict()


def dry_run(b: GraphBuilder, preprocess: dict[str, Any], outputs: list[str]) -> None:
    """Run the graph on zeros at the model's input size (labels set to class 1)."""
    import torch

    loss_ops = {"softmax_loss", "class_error", "topk_error", "accuracy"}
    labels = {layer["inputs"][1] for layer in b.layers
              if layer["op"] in loss_ops and len(layer["inputs"]) > 1}
    h, w = preprocess["input_size"]
    feeds = {v: torch.ones(1) if v in labels else torch.zeros(1, 3, h, w) for v in b.inputs}
    common.dry_run(b, feeds, outputs, f" (input {h}x{w})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting convert-matconvnet",
        epilog=examples_epilog("convert-matconvnet"), formatter_class=HelpFormatter,
        description="Convert a MatConvNet model (.mat v7 or v7.3: DagNN, cnn_train_dag "
        "net-epoch-N.mat, SimpleNN) into a reid-porting checkpoint with MatConvNet's exact "
        "layer semantics.",
    )
    p.add_argument("model", help="the .mat file")
    p.add_argument("-o", "--output", help="checkpoint to write (default: <model>.pth)")
    p.add_argument("--arch", choices=["auto", "none"], default="auto",
                   help="map a known architecture onto porting.models (default auto)")
    p.add_argument("--no-test-head", action="store_true",
                   help="do not add the paper's lrn_test head (pool5 -> pool5n)")
    add_input_limits(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    return p


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    digest = sha256_soon(args.model)
    b, model = convert(args.model, test_head=not args.no_test_head,
                       allow_nonfinite=args.allow_nonfinite, max_memory_gb=args.max_memory,
                       progress=not args.quiet)
    outputs = default_outputs(b)
    b.module(outputs)  # checks every op and parameter reference before writing
    two = is_two_stream(b)
    spec = preprocess_for(model, two)
    stats, layout, version = model.stats_summary, model.layout, model.mat_version
    del model  # the graph holds its own tensors now; release the file's arrays
    names = {v for layer in b.layers for v in layer["outputs"]}
    feature = "pool5" if "pool5" in names else ("fc7" if "fc7" in names else None)
    arch = arch_map = mapping = None
    if args.arch == "auto":
        from .matconvnet_arch import map_to_canonical

        found = map_to_canonical(b, spec)
        if found is not None:
            arch, arch_map, mapping = found
    if mapping is None:  # the --arch check already ran the whole network otherwise
        dry_run(b, {"input_size": [224, 224]} if two else spec, outputs)
    out = args.output or str(Path(args.model).with_suffix(".pth"))
    if stats:
        last = {split: rows[-1] for split, rows in stats.items() if rows}
        b.notes.append(f"training stats: {sum(len(r) for r in stats.values())} "
                       f"epoch rows; last: " + "; ".join(
                           f"{s} " + ", ".join(f"{k}={v:.4g}" for k, v in row.items())
                           for s, row in last.items()))
    write_checkpoint(
        out, b, source_path=args.model, outputs=outputs, preprocess=spec,
        recipe="market-matconvnet" if two else "pool5-l2", arch=arch, arch_map=arch_map,
        source_sha256=digest,
        meta={"feature_var": feature, "layout": layout, "mat_version": version,
              "stats": stats, "two_stream": two,
              "loss_weights": {"objective": 0.5, "objective_2": 0.5, "objective_final": 1.0}
              if two else {}})
    if not args.quiet:
        print(summary_table(b, spec, mapping))
        print(f"\nwrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)

