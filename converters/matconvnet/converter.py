"""``convert-matconvnet model.mat -o model.pth``.

Reads DagNN (top level or under ``net`` as cnn_train_dag saves it), the importer's layout and
SimpleNN, MAT v5/v7 or v7.3, and builds a graph with MatConvNet's exact semantics: each
``dagnn.*`` class is one unit of :mod:`.layers` whose ``build`` adds its graph layers. Var names
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
from porting.outputs import check_output_file

from .. import common
from ..common import (
    GraphBuilder,
    add_input_limits,
    run_cli,
    sha256_soon,
    summary_table,
    write_checkpoint,
)
from ..limits import DEFAULT_MAX_MEMORY_GB
from .check import check_model, dry_run_shape, nonfinite_note
from .context import Ctx
from .layers import UNITS
from .model import MCNModel, read_matconvnet


def convert(path: str | os.PathLike, test_head: bool = True, *, allow_nonfinite: bool = False,
            max_memory_gb: float = DEFAULT_MAX_MEMORY_GB, progress: bool = False,
            bilinear_kernel: str = "gpu") -> tuple[GraphBuilder, MCNModel]:
    """Build the graph of a MatConvNet model file, once :func:`.check.check_model`
    has checked it (block properties, param sizes, inputs/outputs, non-finite params, the
    dry run's memory)."""
    model = read_matconvnet(path)
    checked = check_model(model, allow_nonfinite=allow_nonfinite, max_memory_gb=max_memory_gb)
    ctx = Ctx(model, {"bilinear_kernel": bilinear_kernel})
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
            UNITS.get(layer.type, layer.name, ctx.source).build(layer, ctx)
            bar.update(1)
    names = {v for layer in ctx.b.layers for v in layer["outputs"]}
    for stream in ("", "_2"):  # the second stream of the paper's net: pool5_2 -> pool5n_2
        if test_head and f"pool5{stream}" in names and f"pool5n{stream}" not in names:
            # test/test_gallery_query_crazy.m adds this after loading: exact L2 over channels.
            ctx.b.add(f"lrn_test{stream}", "dagnn.LRN", "mcn_lrn", [f"pool5{stream}"],
                      [f"pool5n{stream}"], {"param": [4096.0, 0.0, 1.0, 0.5]})
            ctx.b.notes.append(f"added the paper's test-time head lrn_test{stream} = "
                               f"dagnn.LRN([4096 0 1 0.5]) on pool5{stream} -> "
                               f"pool5n{stream} (not part of the file)")
    return ctx.b, model


def default_outputs(b: GraphBuilder) -> list[str]:
    consumed = {v for layer in b.layers for v in layer["inputs"]}
    return [v for layer in b.layers for v in layer["outputs"]
            if v not in consumed and layer["name"] not in ("lrn_test", "lrn_test_2")]


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
    first_reader = {}
    for layer in b.layers:
        for i, v in enumerate(layer["inputs"]):
            first_reader.setdefault(v, (layer["type"], i))
    feeds = {v: torch.ones(1) if v in labels else
             torch.zeros(dry_run_shape(*first_reader.get(v, ("", 0)), h, w)) for v in b.inputs}
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
                   help="do not add the paper's lrn_test head (pool5 -> pool5n, and "
                        "pool5_2 -> pool5n_2 on a second stream)")
    p.add_argument("--bilinear-kernel", choices=["gpu", "cpu"], default="gpu",
                   help="dagnn.BilinearSampler's border: 'gpu' (default) interpolates a "
                   "sample within one pixel above or left of the image from its in-image "
                   "neighbours, as MatConvNet's GPU kernel does; 'cpu' gives it 0, as its CPU "
                   "kernel does (compare with a dump made on the CPU)")
    add_input_limits(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    return p


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.output or str(Path(args.model).with_suffix(".pth"))
    check_output_file(out, "-o")  # before the conversion's compute
    digest = sha256_soon(args.model)
    b, model = convert(args.model, test_head=not args.no_test_head,
                       allow_nonfinite=args.allow_nonfinite, max_memory_gb=args.max_memory,
                       progress=not args.quiet, bilinear_kernel=args.bilinear_kernel)
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
        from .arch import map_to_canonical

        found = map_to_canonical(b, spec)
        if found is not None:
            arch, arch_map, mapping = found
    if mapping is None:  # the --arch check already ran the whole network otherwise
        dry_run(b, {"input_size": [224, 224]} if two else spec, outputs)
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

