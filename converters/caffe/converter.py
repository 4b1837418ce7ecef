"""``convert-caffe deploy.prototxt weights.caffemodel -o model.pth``.

Each Caffe layer type is one unit of :mod:`.layers` (registered by its type name) whose
``build`` adds graph layers with Caffe's exact semantics. Blob names are kept: a blob that a
later in-place layer overwrites stays reachable as ``<blob>@<layer>`` (e.g. ``conv1@conv1``
before ``conv1_relu``), the final value under the plain blob name, as Caffe shows it after
forward.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from porting.argtypes import finite_float
from porting.cli import HelpFormatter, examples_epilog
from porting.outputs import check_output_file

from .. import common
from ..common import (
    ConversionError,
    GraphBuilder,
    add_input_limits,
    run_cli,
    sha256_soon,
    summary_table,
    write_checkpoint,
)
from ..limits import DEFAULT_MAX_MEMORY_GB
from .check import check_net, nonfinite_note
from .context import Ctx
from .layers import UNITS
from .layers.data import DATA_TYPES
from .reader import CaffeNet, load_net, phase_layers, read_mean_binaryproto


def convert(prototxt: str | os.PathLike, caffemodel: str | os.PathLike,
            phase: str = "TEST", *, allow_nonfinite: bool = False,
            max_memory_gb: float = DEFAULT_MAX_MEMORY_GB,
            progress: bool = False,
            ignore_unknown_fields: bool = False) -> tuple[GraphBuilder, CaffeNet]:
    """Build the graph of a Caffe net (weights matched by layer name).

    The net is read and checked (:func:`.check.check_net`: fields, blob shapes, bottom
    and top counts, non-finite weights, the dry run's memory) before anything is built.
    A prototxt field the schema does not know (a fork's or a custom layer's) is an error:
    the converter cannot tell whether it changes the numbers. With
    ``ignore_unknown_fields`` such fields are skipped, warned about, and listed in the
    graph's notes (``convert-caffe`` records them in the checkpoint's ``meta``). The built
    graph is checked against the checkpoint schema's limits, so that what converts loads.
    How its convolutions are computed is chosen when the graph runs
    (:class:`porting.graph.GraphModule`'s ``conv``), not here.
    """
    net = load_net(prototxt, caffemodel, phase)
    for layer in net.layers:  # an unknown type says more than its unknown *_param field
        UNITS.get(layer.type, layer.name, os.fspath(prototxt))
    if net.unknown_fields and not ignore_unknown_fields:
        raise ConversionError(unknown_field_error(net.unknown_fields))
    checked = check_net(net, os.fspath(prototxt), os.fspath(caffemodel),
                        allow_nonfinite=allow_nonfinite, max_memory_gb=max_memory_gb)
    ctx = Ctx(net, os.fspath(prototxt), phase)
    with common.layer_progress(len(net.layers), caffemodel, progress) as bar:
        for layer in net.layers:
            UNITS.get(layer.type, layer.name, ctx.source).build(layer, ctx)
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
    common.check_graph_limits(ctx.b, graph_outputs(ctx.b))
    return ctx.b, net


_SKIPPED = " skipped (custom layer parameter?)"


def unknown_field_error(notes: tuple[str, ...]) -> str:
    """The one-line error for a prototxt's unknown fields (the first, and how many)."""
    first = notes[0].removesuffix(_SKIPPED)
    more = f" ({len(notes)} unknown fields in all)" if len(notes) > 1 else ""
    return (f"{first}: the converter does not know this field, so it cannot tell whether "
            f"it changes the numbers{more}; --ignore-unknown-fields converts without it")


def ignored_fields(net: CaffeNet) -> list[str]:
    """What ``--ignore-unknown-fields`` ignored, as recorded in the checkpoint (file names
    without their folder)."""
    return [os.path.basename(n.removesuffix(_SKIPPED)) for n in net.unknown_fields]


def graph_outputs(b: GraphBuilder) -> list[str]:
    consumed = {v for layer in b.layers for v in layer["inputs"]}
    return [v for layer in b.layers for v in layer["outputs"] if v not in consumed]


def dry_run(b: GraphBuilder, net: CaffeNet, outputs: list[str]) -> None:
    """Run the graph on zeros of the declared input shapes, batch included (when all are
    declared)."""
    shapes = {k: v for k, v in net.inputs.items() if v}
    if set(shapes) == set(b.inputs):
        common.dry_run(b, {k: torch.zeros(tuple(v)) for k, v in shapes.items()}, outputs)


def _transform(net: CaffeNet) -> tuple[dict[str, Any], str] | None:
    """The first data layer's ``transform_param`` (and resize): the converted phase's,
    else the other phase's."""
    if net.definition is None:
        return None
    for phase in sorted(("TRAIN", "TEST"), key=lambda ph: ph != net.phase):
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
    if tp is not None and tp[0]["scale"] != 1.0:  # Caffe: (pixel - mean) * scale
        spec["std"] = [1.0 / tp[0]["scale"]] * 3
    if rgb:
        spec["colour"] = "RGB"
        m = np.asarray(spec["mean"], dtype=np.float64)
        spec["mean"] = m[..., ::-1].tolist()
    spec["source"] = "convert-caffe: D-X-Y caffe-reid extraction (caffe.io resize to 256, "\
                     "centre crop, BGR 0-255 minus the BGR mean)"
    return spec


def uncarried_data_fields(net: CaffeNet, source: str, mean_given: bool) -> list[str]:
    """Fields of the converted phase's data layers (graph inputs) that change the pixels
    and that the checkpoint's preprocessing cannot carry: a ``mean_file`` not given with
    ``--mean``, ``mirror`` (Caffe flips half the images at random, at test time too),
    grey input (``force_gray``, ``image_data_param.is_color: false``)."""
    notes = []
    for layer in net.layers:
        if layer.type not in DATA_TYPES or layer.type == "Input":
            continue
        where = f"{source}: layer '{layer.name}' ({layer.type})"
        tp = layer.proto.transform_param
        if tp.mean_file and not mean_given:
            notes.append(f"{where}: transform_param.mean_file {tp.mean_file!r} is not read "
                         "(give it with --mean)")
        if tp.mirror:
            notes.append(f"{where}: transform_param.mirror: Caffe flips half the images at "
                         "random, at test time too")
        if tp.force_gray or (layer.proto.HasField("image_data_param")
                             and not layer.proto.image_data_param.is_color):
            notes.append(f"{where}: grey input (force_gray / image_data_param.is_color) is "
                         "not carried by the preprocessing")
    return notes


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
    p.add_argument("--mean-value", type=finite_float, nargs=3, metavar=("B", "G", "R"),
                   help="per-channel BGR mean (default: D-X-Y's Market mean)")
    p.add_argument("--rgb", action="store_true",
                   help="flip conv1's input channels so the model takes RGB input")
    p.add_argument("--arch", choices=["auto", "none"], default="auto",
                   help="map a known architecture onto porting.models (default auto)")
    p.add_argument("--feature", help="blob used as the re-ID feature (default: fc7 or pool5)")
    p.add_argument("--ignore-unknown-fields", action="store_true",
                   help="convert although the prototxt has fields the converter does not "
                   "know (a fork's or a custom layer's): they are skipped, listed on stderr "
                   "and recorded in the checkpoint's meta.ignored_fields")
    add_input_limits(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    return p


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.output or str(Path(args.caffemodel).with_suffix(".pth"))
    check_output_file(out, "-o")  # before the conversion's compute
    digest = sha256_soon(args.caffemodel)
    proto_digest = sha256_soon(args.prototxt)  # both recorded for compare --opencv
    b, net = convert(args.prototxt, args.caffemodel, args.phase,
                     allow_nonfinite=args.allow_nonfinite, max_memory_gb=args.max_memory,
                     progress=not args.quiet,
                     ignore_unknown_fields=args.ignore_unknown_fields)
    outputs = graph_outputs(b)
    mean = None
    if args.mean:
        mean = read_mean_binaryproto(args.mean).transpose(1, 2, 0)
    elif args.mean_value:
        mean = np.asarray(args.mean_value, dtype=np.float64)
    notes = []
    uncarried = uncarried_data_fields(net, args.prototxt, bool(args.mean or args.mean_value))
    if uncarried and not args.ignore_unknown_fields:
        raise ConversionError(f"{uncarried[0]}; --ignore-unknown-fields converts without it")
    for note in uncarried:
        print(f"warning: ignored: {note}", file=sys.stderr)
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
        from .arch import map_to_canonical

        found = map_to_canonical(b, net)
        if found is not None:
            arch, arch_map, mapping = found
    if mapping is None:  # the --arch check already ran the whole network otherwise
        dry_run(b, net, outputs)
    b.notes.extend(notes)
    write_checkpoint(out, b, source_path=args.caffemodel, outputs=outputs, preprocess=spec,
                     recipe="caffe-dxy", arch=arch, arch_map=arch_map, source_sha256=digest,
                     meta={"feature_var": feature, "phase": args.phase, "net_name": net.name,
                           "prototxt": Path(args.prototxt).name,
                           "prototxt_path": str(Path(args.prototxt).resolve()),
                           "prototxt_sha256": proto_digest.result(),
                           **({"ignored_fields": ignored_fields(net) + [
                               os.path.basename(n) for n in uncarried]}
                              if net.unknown_fields or uncarried else {})})
    if not args.quiet:
        print(summary_table(b, spec, mapping))
        print(f"\nwrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)
