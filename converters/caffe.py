"""``convert-caffe deploy.prototxt weights.caffemodel -o model.pth``.

Each Caffe layer type has one small function below (registered by its type name) that adds
graph layers with Caffe's exact semantics. Blob names are kept: a blob that a later in-place
layer overwrites stays reachable as ``<blob>@<layer>`` (e.g. ``conv1@conv1`` before
``conv1_relu``), the final value under the plain blob name, as Caffe shows it after forward.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from porting.cli import HelpFormatter, examples_epilog

from . import common
from .caffe_reader import CaffeLayer, CaffeNet, load_net, phase_layers, read_mean_binaryproto
from .caffe_spec import check_net, conv_geometry, nonfinite_note, pool_geometry
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

LAYERS = Registry("caffe")


class Ctx:
    """Per-conversion state handed to each layer function."""

    def __init__(self, net: CaffeNet, source: str, phase: str) -> None:
        self.net = net
        self.source = source
        self.phase = phase
        self.b = GraphBuilder("caffe", source)
        self.current: dict[str, str] = {}  # blob -> var holding its current value
        writers = Counter(t for layer in net.layers for t in layer.tops)
        self.remaining = dict(writers)

    def err(self, layer: CaffeLayer, msg: str) -> ConversionError:
        return ConversionError(f"{self.source}: layer {layer.name!r} ({layer.type}): {msg}")

    def ins(self, layer: CaffeLayer) -> list[str]:
        try:
            return [self.current[b] for b in layer.bottoms]
        except KeyError as exc:
            raise self.err(layer, f"bottom blob {exc.args[0]!r} is not produced by any "
                                  "earlier layer or input") from None

    def outs(self, layer: CaffeLayer) -> list[str]:
        names = []
        for top in layer.tops:
            self.remaining[top] -= 1
            names.append(top if self.remaining[top] == 0 else f"{top}@{layer.name}")
            self.current[top] = names[-1]
        return names

    def blob(self, layer: CaffeLayer, i: int, shape: tuple[int, ...], what: str) -> str:
        """Register blob ``i`` (checked against ``shape``) and return its parameter key."""
        if i >= len(layer.blobs):
            raise self.err(layer, f"missing blob {i} ({what}) in the caffemodel")
        if not layer.blob_matches(i, shape):
            raise self.err(layer, f"blob {i} ({what}) has shape {tuple(layer.blobs[i].shape)}, "
                                  f"expected {tuple(shape)}")
        name = layer.param_names[i] if i < len(layer.param_names) else None
        key = name or f"{layer.name}/{i}"
        return self.b.param(key.replace(".", "_"), layer.blobs[i].reshape(shape), layer.name)

    def add(self, layer: CaffeLayer, op: str, attrs: dict[str, Any] | None = None,
            params: dict[str, str] | None = None, inputs: list[str] | None = None) -> None:
        ins = self.ins(layer) if inputs is None else inputs
        self.b.add(layer.name, layer.type, op, ins, self.outs(layer), attrs, params)


def _p(layer: CaffeLayer, field: str):
    """The layer's ``*_param`` message (defaults when the prototxt leaves it unset)."""
    return layer.params.get(field) or getattr(layer.proto, field)


@LAYERS.register("Input", "Data", "ImageData", "ReidData", "DummyData", "HDF5Data",
                 "MemoryData", "WindowData")
def _input(layer: CaffeLayer, ctx: Ctx) -> None:
    for top in ctx.outs(layer):
        ctx.b.inputs.append(top)


@LAYERS.register("Convolution")
def _convolution(layer: CaffeLayer, ctx: Ctx) -> None:
    # check_net has checked the fields and the blobs' shapes against them
    p = _p(layer, "convolution_param")
    g = conv_geometry(layer, ctx.source)
    (kh, kw), (ph, pw), (sh, sw), (dh, dw) = g.kernel, g.pad, g.stride, g.dilation
    group, n = int(p.group), int(p.num_output)
    cin = layer.blobs[0].shape[-3]
    params = {"weight": ctx.blob(layer, 0, (n, cin, kh, kw), "weights")}
    if p.bias_term:
        params["bias"] = ctx.blob(layer, 1, (n,), "bias")
    ctx.add(layer, "conv", {"pad": [ph, ph, pw, pw], "stride": [sh, sw],
                            "dilation": [dh, dw], "groups": group}, params)


@LAYERS.register("InnerProduct")
def _inner_product(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "inner_product_param")
    n = int(p.num_output)
    if not layer.blobs:
        raise ctx.err(layer, "missing blob 0 (weights) in the caffemodel")
    k = layer.blobs[0].size // max(n, 1)
    shape = (k, n) if p.transpose else (n, k)
    w = ctx.blob(layer, 0, shape, "weights")
    if p.transpose:
        ctx.b.params[w] = ctx.b.params[w].t().contiguous()
    params = {"weight": w}
    if p.bias_term:
        params["bias"] = ctx.blob(layer, 1, (n,), "bias")
    ctx.add(layer, "linear", {"axis": int(p.axis)}, params)


@LAYERS.register("Pooling")
def _pooling(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "pooling_param")
    method = {0: "max", 1: "ave"}.get(int(p.pool))
    if method is None:
        raise ctx.err(layer, "STOCHASTIC pooling is not supported (it is random at train "
                             "time and a weighted average at test time in Caffe)")
    attrs: dict[str, Any] = {"method": method, "global_pooling": bool(p.global_pooling),
                             "ceil_mode": int(p.round_mode) == 0}
    g = pool_geometry(layer, ctx.source)
    if g is not None:
        attrs.update(kernel=list(g.kernel), pad=list(g.pad), stride=list(g.stride))
    ctx.add(layer, "caffe_pool", attrs)


@LAYERS.register("LRN")
def _lrn(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "lrn_param")
    region = "ACROSS_CHANNELS" if int(p.norm_region) == 0 else "WITHIN_CHANNEL"
    if int(p.local_size) % 2 == 0:
        raise ctx.err(layer, f"LRN local_size must be odd, got {p.local_size}")
    ctx.add(layer, "caffe_lrn", {"local_size": int(p.local_size), "alpha": float(p.alpha),
                                 "beta": float(p.beta), "k": float(p.k),
                                 "norm_region": region})


@LAYERS.register("BatchNorm")
def _batch_norm(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "batch_norm_param")
    if len(layer.blobs) < 3:
        raise ctx.err(layer, f"expected 3 blobs (mean, variance, scale factor), found "
                             f"{len(layer.blobs)}")
    c = layer.blobs[0].size
    params = {"mean": ctx.blob(layer, 0, (c,), "mean"),
              "variance": ctx.blob(layer, 1, (c,), "variance"),
              "scale_factor": ctx.blob(layer, 2, (1,), "scale factor")}
    use_global = bool(p.use_global_stats) if p.HasField("use_global_stats") else (
        ctx.phase == "TEST")
    ctx.add(layer, "caffe_bn", {"eps": float(p.eps), "use_global_stats": use_global,
                                "moving_average_fraction": float(p.moving_average_fraction)},
            params)


@LAYERS.register("Scale")
def _scale(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "scale_param")
    params: dict[str, str] = {}
    i = 0
    if len(layer.bottoms) == 1:
        if not layer.blobs:
            raise ctx.err(layer, "missing blob 0 (scale) in the caffemodel")
        shape = tuple(layer.blobs[0].shape)
        params["weight"] = ctx.blob(layer, 0, shape, "scale")
        i = 1
    if p.bias_term:
        if i >= len(layer.blobs):
            raise ctx.err(layer, f"missing blob {i} (bias) in the caffemodel")
        params["bias"] = ctx.blob(layer, i, tuple(layer.blobs[i].shape), "bias")
    ctx.add(layer, "scale", {"axis": int(p.axis)}, params)


@LAYERS.register("Bias")
def _bias(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "bias_param")
    params = {}
    if len(layer.bottoms) == 1:
        params["bias"] = ctx.blob(layer, 0, tuple(layer.blobs[0].shape), "bias")
    ctx.add(layer, "bias", {"axis": int(p.axis)}, params)


@LAYERS.register("ReLU")
def _relu(layer: CaffeLayer, ctx: Ctx) -> None:
    ctx.add(layer, "relu", {"negative_slope": float(_p(layer, "relu_param").negative_slope)})


@LAYERS.register("Sigmoid")
def _sigmoid(layer: CaffeLayer, ctx: Ctx) -> None:
    ctx.add(layer, "sigmoid")


@LAYERS.register("TanH")
def _tanh(layer: CaffeLayer, ctx: Ctx) -> None:
    ctx.add(layer, "tanh")


@LAYERS.register("Eltwise")
def _eltwise(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "eltwise_param")
    op = {0: "PROD", 1: "SUM", 2: "MAX"}[int(p.operation)]
    coeff = [float(c) for c in p.coeff]
    if coeff and (op != "SUM" or len(coeff) != len(layer.bottoms)):
        raise ctx.err(layer, "Eltwise coeff needs the SUM operation and one value per bottom")
    ctx.add(layer, "eltwise", {"operation": op, "coeff": coeff})


@LAYERS.register("Power")
def _power(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "power_param")
    ctx.add(layer, "power", {"power": float(p.power), "scale": float(p.scale),
                             "shift": float(p.shift)})


@LAYERS.register("Concat")
def _concat(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "concat_param")
    axis = int(p.concat_dim) if p.HasField("concat_dim") else int(p.axis)
    ctx.add(layer, "concat", {"axis": axis})


@LAYERS.register("Slice")
def _slice(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "slice_param")
    axis = int(p.slice_dim) if p.HasField("slice_dim") else int(p.axis)
    ctx.add(layer, "slice", {"axis": axis, "slice_points": [int(s) for s in p.slice_point],
                             "n_out": len(layer.tops)})


@LAYERS.register("Flatten")
def _flatten(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "flatten_param")
    ctx.add(layer, "flatten", {"axis": int(p.axis), "end_axis": int(p.end_axis)})


@LAYERS.register("Reshape")
def _reshape(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "reshape_param")
    if int(p.axis) != 0 or int(p.num_axes) != -1:
        raise ctx.err(layer, "only Reshape over all axes (axis 0, num_axes -1) is supported")
    ctx.add(layer, "reshape", {"shape": [int(d) for d in p.shape.dim]})


@LAYERS.register("Dropout")
def _dropout(layer: CaffeLayer, ctx: Ctx) -> None:
    ctx.add(layer, "dropout", {"rate": float(_p(layer, "dropout_param").dropout_ratio)})


@LAYERS.register("Softmax")
def _softmax(layer: CaffeLayer, ctx: Ctx) -> None:
    ctx.add(layer, "softmax", {"axis": int(_p(layer, "softmax_param").axis)})


@LAYERS.register("Split")
def _split(layer: CaffeLayer, ctx: Ctx) -> None:
    ctx.add(layer, "identity", {"n_out": len(layer.tops)})


@LAYERS.register("SoftmaxWithLoss")
def _softmax_loss(layer: CaffeLayer, ctx: Ctx) -> None:
    lp = layer.proto.loss_param
    if lp.HasField("ignore_label"):
        raise ctx.err(layer, "loss_param.ignore_label is not supported")
    if lp.HasField("normalization") and int(lp.normalization) not in (1,):  # VALID
        raise ctx.err(layer, "only the VALID loss normalisation (Caffe's default) is supported")
    weight = list(layer.loss_weight) or [1.0]
    ctx.add(layer, "softmax_loss", {"reduction": "mean", "loss_weight": float(weight[0])})


@LAYERS.register("Accuracy")
def _accuracy(layer: CaffeLayer, ctx: Ctx) -> None:
    p = _p(layer, "accuracy_param")
    if p.HasField("ignore_label"):
        raise ctx.err(layer, "accuracy_param.ignore_label is not supported")
    if len(layer.tops) > 1:
        raise ctx.err(layer, "the per-class accuracy top is not supported")
    ctx.add(layer, "accuracy", {"top_k": int(p.top_k), "axis": int(p.axis)})


@LAYERS.register("Euclidean")
def _euclidean(layer: CaffeLayer, ctx: Ctx) -> None:
    """caffe-reid: elementwise squared difference of two bottoms."""
    ctx.add(layer, "square_diff")


@LAYERS.register("PairEuclidean")
def _pair_euclidean(layer: CaffeLayer, ctx: Ctx) -> None:
    """caffe-reid: (first half - second half)^2 of one batch; a second top gets the
    same-identity labels of the pairs."""
    ins = ctx.ins(layer)
    outs = ctx.outs(layer)
    ctx.b.add(layer.name, layer.type, "pair_split_square", ins[:1], outs[:1])
    if len(outs) > 1:
        if len(ins) < 2:
            raise ctx.err(layer, "the label_dif top needs the label bottom")
        ctx.b.add(layer.name + "_labels", layer.type, "pair_same_label", ins[1:2], outs[1:2])


def convert(prototxt: str | os.PathLike, caffemodel: str | os.PathLike,
            phase: str = "TEST", *, allow_nonfinite: bool = False,
            max_memory_gb: float = DEFAULT_MAX_MEMORY_GB,
            progress: bool = False) -> tuple[GraphBuilder, CaffeNet]:
    """Build the graph of a Caffe net (weights matched by layer name).

    The net is read and checked (:func:`caffe_spec.check_net`: fields, blob shapes, bottom
    and top counts, non-finite weights, the dry run's memory) before anything is built.
    How its convolutions are computed is chosen when the graph runs
    (:class:`porting.graph.GraphModule`'s ``conv``), not here.
    """
    net = load_net(prototxt, caffemodel, phase)
    checked = check_net(net, os.fspath(prototxt), os.fspath(caffemodel),
                        allow_nonfinite=allow_nonfinite, max_memory_gb=max_memory_gb)
    ctx = Ctx(net, os.fspath(prototxt), phase)
    with common.layer_progress(len(net.layers), caffemodel, progress) as bar:
        for layer in net.layers:
            LAYERS.get(layer.type, layer.name, ctx.source)(layer, ctx)
            bar.update(1)
    for note in net.warnings:
        ctx.b.notes.append(note)
    note = nonfinite_note(checked)
    if note:
        ctx.b.notes.append(note)
        print(f"warning: {note}", file=sys.stderr)
    if net.unused_weights:
        ctx.b.notes.append(f"caffemodel layers not in this {phase} net: "
                           f"{', '.join(net.unused_weights[:8])}")
    return ctx.b, net


def graph_outputs(b: GraphBuilder) -> list[str]:
    consumed = {v for layer in b.layers for v in layer["inputs"]}
    return [v for layer in b.layers for v in layer["outputs"] if v not in consumed]


def dry_run(b: GraphBuilder, net: CaffeNet, outputs: list[str]) -> None:
    """Run the graph on zeros of the declared input shapes (when all are declared)."""
    shapes = {k: v for k, v in net.inputs.items() if v}
    if set(shapes) == set(b.inputs):
        common.dry_run(b, {k: torch.zeros((1,) + tuple(v[1:]) if len(v) > 1 else (1,))
                           for k, v in shapes.items()}, outputs)


def _transform(net: CaffeNet) -> tuple[dict[str, Any], str] | None:
    """The first data layer's ``transform_param`` (and resize) in either phase."""
    if net.definition is None:
        return None
    for phase in ("TRAIN", "TEST"):
        try:
            layers = phase_layers(net.definition, phase)
        except ValueError:
            continue
        for layer in layers:
            if not layer.HasField("transform_param"):
                continue
            tp = layer.transform_param
            out: dict[str, Any] = {"crop_size": int(tp.crop_size),
                                   "mean_value": [float(v) for v in tp.mean_value],
                                   "mirror": bool(tp.mirror), "scale": float(tp.scale)}
            for field in ("reid_data_param", "image_data_param"):
                rp = getattr(layer, field) if layer.HasField(field) else None
                if rp is not None and rp.new_height and rp.new_width:
                    out["resize"] = [int(rp.new_height), int(rp.new_width)]
            return out, layer.name
    return None


def preprocess_for(net: CaffeNet, mean: np.ndarray | None, rgb: bool) -> dict[str, Any] | None:
    """Preprocessing spec: D-X-Y's extraction (BGR 0-255, 256 resize, centre crop), with the
    crop and mean of the prototxt's ``transform_param`` when a data layer has one."""
    from porting.preprocess import caffe_dxy

    data = next((s for s in net.inputs.values() if s and len(s) == 4), None)
    crop = data[2] if data else 224
    tp = _transform(net)
    if tp is not None:
        if tp[0]["crop_size"]:
            crop = tp[0]["crop_size"]
        if mean is None and len(tp[0]["mean_value"]) == 3:
            mean = np.asarray(tp[0]["mean_value"], dtype=np.float64)
    try:
        spec = caffe_dxy(crop_size=crop).to_dict()
    except ValueError:
        spec = caffe_dxy().to_dict()
        spec["input_size"] = [int(data[2]), int(data[3])]
        spec["resize"] = [int(data[2]), int(data[3])]
    if mean is not None:
        spec["mean"] = mean.tolist()
    if rgb:
        spec["colour"] = "RGB"
        m = np.asarray(spec["mean"], dtype=np.float64)
        spec["mean"] = m[..., ::-1].tolist()
    spec["source"] = "convert-caffe: D-X-Y caffe-reid extraction (caffe.io resize to 256, "\
                     "centre crop, BGR 0-255 minus the BGR mean)"
    return spec


def flip_input_channels(b: GraphBuilder) -> str:
    """``--rgb``: reverse conv1's input channels so the net takes RGB instead of BGR."""
    first = next((layer for layer in b.layers if layer["op"] == "conv"
                  and set(layer["inputs"]) & set(b.inputs)), None)
    if first is None:
        raise ConversionError(f"{b.source}: --rgb needs a convolution on the input blob")
    key = first["params"]["weight"]
    if b.params[key].shape[1] != 3:
        raise ConversionError(f"{b.source}: --rgb: layer {first['name']!r} takes "
                              f"{b.params[key].shape[1]} channels, not 3")
    b.params[key] = b.params[key].flip(1).contiguous()
    return first["name"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting convert-caffe",
        epilog=examples_epilog("convert-caffe"), formatter_class=HelpFormatter,
        description="Convert a Caffe net (prototxt + caffemodel, V2 or legacy V1) into a "
        "reid-porting checkpoint that computes the same numbers as Caffe.",
    )
    p.add_argument("prototxt", help="the net definition (deploy or train prototxt)")
    p.add_argument("caffemodel", help="the trained weights")
    p.add_argument("-o", "--output", help="checkpoint to write (default: <caffemodel>.pth)")
    p.add_argument("--phase", choices=["TEST", "TRAIN"], default="TEST",
                   help="which layers to keep by their include/exclude rules (default TEST)")
    p.add_argument("--mean", help="a mean .binaryproto for the preprocessing spec")
    p.add_argument("--mean-value", type=float, nargs=3, metavar=("B", "G", "R"),
                   help="per-channel BGR mean (default: D-X-Y's Market mean)")
    p.add_argument("--rgb", action="store_true",
                   help="flip conv1's input channels so the model takes RGB input")
    p.add_argument("--arch", choices=["auto", "none"], default="auto",
                   help="map a known architecture onto porting.models (default auto)")
    p.add_argument("--feature", help="blob used as the re-ID feature (default: fc7 or pool5)")
    add_input_limits(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    return p


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    digest = sha256_soon(args.caffemodel)
    b, net = convert(args.prototxt, args.caffemodel, args.phase,
                     allow_nonfinite=args.allow_nonfinite, max_memory_gb=args.max_memory,
                     progress=not args.quiet)
    outputs = graph_outputs(b)
    mean = None
    if args.mean:
        mean = read_mean_binaryproto(args.mean).transpose(1, 2, 0)
    elif args.mean_value:
        mean = np.asarray(args.mean_value, dtype=np.float64)
    notes = []
    if args.rgb:
        notes.append(f"--rgb: input channels of {flip_input_channels(b)!r} reversed")
    spec = preprocess_for(net, mean, args.rgb)
    var_names = {v for layer in b.layers for v in layer["outputs"]}
    feature = args.feature or next((v for v in ("fc7", "pool5") if v in var_names), None)
    if args.feature and args.feature not in var_names:
        raise ConversionError(f"{args.prototxt}: --feature {args.feature!r} is not a blob")
    arch = arch_map = None
    mapping = None
    if args.arch == "auto":
        from .caffe_arch import map_to_canonical

        found = map_to_canonical(b, net)
        if found is not None:
            arch, arch_map, mapping = found
    if mapping is None:  # the --arch check already ran the whole network otherwise
        dry_run(b, net, outputs)
    out = args.output or str(Path(args.caffemodel).with_suffix(".pth"))
    b.notes.extend(notes)
    write_checkpoint(out, b, source_path=args.caffemodel, outputs=outputs, preprocess=spec,
                     recipe="caffe-dxy", arch=arch, arch_map=arch_map, source_sha256=digest,
                     meta={"feature_var": feature, "phase": args.phase, "net_name": net.name,
                           "prototxt": Path(args.prototxt).name})
    if not args.quiet:
        print(summary_table(b, spec, mapping))
        print(f"\nwrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)
