"""``reid-porting export``: a checkpoint to a verified ONNX or TorchScript file."""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from porting.argtypes import positive_float, positive_int
from porting.boundary import check_output_file, run_cli
from porting.checkpoint import CheckpointError, load_checkpoint, sha256_file
from porting.cli import HelpFormatter, examples_epilog
from porting.export.budget import DEFAULT_MAX_MEMORY_GB, check_bytes, refuse_if_too_big
from porting.export.nets import build_export, double_export
from porting.export.parity import TOLERANCE, ParityCheck, ParityError, describe_row
from porting.export.rewrite import ExportError
from porting.export.writers import (
    DEFAULT_OPSET,
    MIN_OPSET,
    export_onnx,
    export_torchscript,
    max_opset,
)
from porting.outputs import atomic_write
from porting.recipes import get_recipe


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting export", epilog=examples_epilog("export"),
        formatter_class=HelpFormatter,
        description="Export a reid-porting checkpoint to ONNX or TorchScript; the result is "
                    "run (onnx.reference.ReferenceEvaluator / torch.jit.load) and compared "
                    "with PyTorch before it is written.")
    p.add_argument("checkpoint", help="a checkpoint written by convert-caffe, "
                                      "convert-matconvnet or train")
    p.add_argument("--onnx", metavar="OUT", help="write an ONNX model")
    p.add_argument("--torchscript", metavar="OUT", help="write a TorchScript module")
    p.add_argument("--what", choices=("embed", "siamese"), default="embed",
                   help="embed: image batch -> descriptor (default); siamese: two image "
                        "batches -> the three logit maps of the two-stream net")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset ({MIN_OPSET}-{max_opset()}, default {DEFAULT_OPSET})")
    p.add_argument("--recipe", help="descriptor recipe (default: the checkpoint's)")
    p.add_argument("--feature-var", help="graph variable of the feature "
                                         "(default: the checkpoint's meta.feature_var)")
    p.add_argument("--canonical", action="store_true",
                   help="export the canonical porting.models class instead of the graph")
    p.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"),
                   help="input size (default: the checkpoint's preprocessing input_size)")
    p.add_argument("--input", action="append", metavar="FILE",
                   help="check input: .npy/.npz (N,3,H,W) or an image file (preprocessed "
                        "with the checkpoint's preprocessing); twice for --what siamese. "
                        "Default: 2 seeded uniform(-128, 128) batches")
    p.add_argument("--tolerance", type=positive_float, default=TOLERANCE,
                   help=f"max relative error allowed (default {TOLERANCE:g})")
    p.add_argument("--fp32-only", action="store_true",
                   help="skip the float64 run of the exported graph (the check that it "
                        "computes exactly what the PyTorch model does)")
    p.add_argument("--max-memory", type=positive_float, default=DEFAULT_MAX_MEMORY_GB,
                   metavar="GB", help="refuse an input size whose checks are estimated to need "
                   f"more memory than this (default {DEFAULT_MAX_MEMORY_GB:g} GB)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p



def _load_array(path: str, index: int) -> np.ndarray:
    """An (N, 3, H, W) array from a .npy, or the ``index``-th 4-D array of a .npz."""
    try:
        if path.endswith(".npz"):
            with np.load(path) as z:
                arrays = [z[k] for k in z.files if not k.startswith("__") and z[k].ndim == 4]
            if not arrays:
                raise ExportError(f"{path}: no (N, 3, H, W) array in it")
            arr = arrays[min(index, len(arrays) - 1)]
        else:
            arr = np.load(path)
    except ExportError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ExportError(f"{path}: not a readable .npy/.npz array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        raise ExportError(f"{path}: expected a numeric (N, 3, H, W) array")
    arr = arr[None] if arr.ndim == 3 else arr
    if arr.size == 0:
        raise ExportError(f"{path}: the array {arr.shape} holds no image")
    if not np.isfinite(arr).all():
        raise ExportError(f"{path}: the array holds NaN or Inf")
    return arr


def _check_inputs(files: Sequence[str], model: nn.Module, n_streams: int, flip_input: bool,
                  size: tuple[int, int] | None) -> list[torch.Tensor]:
    """The check batches: one per stream, then the flipped images if the graph takes them.

    ``files``: .npy/.npz arrays (used as given) or images (the checkpoint's preprocessing
    of the image and of its mirror image: a batch of 2). None: seeded uniform(-128, 128)
    batches of 2 at ``size``.
    """
    if files and len(files) not in (1, n_streams):
        raise ExportError(f"give {n_streams} --input file(s), got {len(files)}")
    if not files:
        if size is None:
            raise ExportError("the checkpoint has no preprocessing input_size; pass --size H W")
        return [torch.from_numpy(np.random.RandomState(s).uniform(-128, 128, (2, 3, *size))
                                 .astype(np.float32))
                for s in range(n_streams + int(flip_input))]
    out: list[torch.Tensor] = []
    flipped: list[torch.Tensor] = []
    for s in range(n_streams):
        path = str(files[min(s, len(files) - 1)])
        if not os.path.isfile(path):
            raise ExportError(f"{path}: no such file")
        if path.endswith((".npy", ".npz")):
            x = torch.from_numpy(np.ascontiguousarray(_load_array(path, s), dtype=np.float32))
            xf = torch.flip(x, dims=[3]) if x.dim() == 4 else x
        else:
            from porting.preprocess import Preprocess

            spec = getattr(model, "preprocess_spec", None)
            if not spec:
                raise ExportError("the checkpoint has no preprocessing to read an image with; "
                                  "pass a .npy input")
            pre = Preprocess.from_dict(spec)
            try:
                x = torch.stack([pre(path), pre(path, flip=True)])
            except (OSError, ValueError) as exc:
                raise ExportError(f"{path}: {exc}") from None
            xf = x.flip(0)  # the mirror of each item, as the checkpoint's preprocessing makes it
        if x.dim() != 4 or x.shape[1] != 3:
            raise ExportError(f"{path}: expected an (N, 3, H, W) array, got {tuple(x.shape)}")
        if size is not None and tuple(x.shape[2:]) != tuple(size):
            raise ExportError(f"{path}: the input is {tuple(x.shape[2:])}, --size is "
                              f"{tuple(size)}")
        if out and x.shape[1:] != out[0].shape[1:]:
            raise ExportError(f"the --input files differ in shape: {tuple(out[0].shape)} vs "
                              f"{tuple(x.shape)}")
        out.append(x)
        flipped.append(xf)
    return out + (flipped[:1] if flip_input else [])


def _flip_needs_input(model: nn.Module, recipe: str | None) -> bool:
    """True when the recipe flips and flipping the tensor differs from flipping the image."""
    from porting.features import flip_commutes
    from porting.preprocess import Preprocess

    name = recipe or getattr(model, "recipe", None)
    spec = getattr(model, "preprocess_spec", None)
    if not name or not spec:
        return False
    try:
        rec = get_recipe(name)
    except ValueError:
        return False
    return rec.flip and not flip_commutes(Preprocess.from_dict(spec))


def run(args: argparse.Namespace) -> int:
    import porting
    from porting.loading import model_from_checkpoint

    if not args.onnx and not args.torchscript:
        raise ExportError("nothing to do: give --onnx OUT and/or --torchscript OUT")
    if args.onnx and not MIN_OPSET <= args.opset <= max_opset():
        raise ExportError(f"--opset must be in {MIN_OPSET}..{max_opset()}, got {args.opset}")
    for flag, out in (("--onnx", args.onnx), ("--torchscript", args.torchscript)):
        if out:  # before any compute: the file and its report
            check_output_file(out, flag)
            check_output_file(f"{out}.json", flag)
    ckpt = load_checkpoint(args.checkpoint)
    try:
        model = model_from_checkpoint(ckpt, canonical=True if args.canonical else None)
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{args.checkpoint}: cannot build the model ({msg})") from None
    model.checkpoint_arch = (ckpt.get("arch") or {}).get("name")
    pre = ckpt.get("preprocess") or {}
    size = tuple(args.size) if args.size else None
    if size is None and not args.input and pre.get("input_size"):
        size = tuple(pre["input_size"])
    n_streams = 2 if args.what == "siamese" else 1
    flip_input = args.what == "embed" and _flip_needs_input(model, args.recipe)
    check = _check_inputs(args.input or [], model, n_streams, flip_input, size)
    example = [c[:1].clone() for c in check]
    refuse_if_too_big(check_bytes(model, args.what, example, int(check[0].shape[0]),
                                  recipe=args.recipe, feature_var=args.feature_var),
                      args.max_memory, f"{args.what} at {tuple(example[0].shape[2:])}, "
                      f"{int(check[0].shape[0])} check images")
    spec = build_export(model, args.what, example, recipe=args.recipe,
                        feature_var=args.feature_var)
    parity = ParityCheck(spec, check, lambda rewrite: double_export(
        model, args.what, example, rewrite, recipe=args.recipe, feature_var=args.feature_var),
        args.tolerance, fp64_graph=not args.fp32_only)
    meta = {
        "reid_porting.version": porting.__version__,
        "reid_porting.what": args.what,
        "reid_porting.info": json.dumps(spec.info, sort_keys=True),
        "reid_porting.preprocess": json.dumps(ckpt.get("preprocess")),
        "reid_porting.recipe": str(spec.info.get("recipe", ckpt.get("recipe"))),
        "reid_porting.checkpoint_sha256": sha256_file(args.checkpoint),
    }
    shapes = {n: ["batch", *list(t.shape[1:])] for n, t in zip(spec.input_names, check,
                                                                strict=True)}
    jobs: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = []
    if args.onnx:
        jobs.append(("onnx", args.onnx, lambda out: export_onnx(
            spec, example, parity, out, opset=args.opset, metadata=meta)))
    if args.torchscript:
        jobs.append(("torchscript", args.torchscript, lambda out: export_torchscript(
            spec, example, parity, out,
            extra={"reid_porting.json": json.dumps(meta, sort_keys=True)})))
    status = 0
    for kind, out, fn in jobs:
        try:
            report = fn(out)
        except ParityError as exc:
            print(f"export: {kind} parity check FAILED, {out} not written: {exc}",
                  file=sys.stderr)
            status = 1
            continue
        full = {
            "format": kind, "file": os.path.basename(out), "checkpoint": str(args.checkpoint),
            **({"opset": args.opset} if kind == "onnx" else {}),
            "inputs": shapes, "outputs": spec.output_names, **spec.info,
            "check": {k: v for k, v in report.items() if k != "sha256"},
            "sha256": report["sha256"],
            "metadata": {k: v for k, v in meta.items() if k != "reid_porting.preprocess"},
            "preprocess": _preprocess_summary(ckpt.get("preprocess")),
            "versions": {"torch": torch.__version__, "reid_porting": porting.__version__,
                         **({"onnx": _onnx_version()} if kind == "onnx" else {})},
        }
        text = json.dumps(full, indent=1, sort_keys=True)
        try:
            atomic_write(f"{out}.json", lambda tmp, text=text: Path(tmp).write_text(text + "\n"))
        except BaseException:  # no export without its report
            Path(out).unlink(missing_ok=True)
            raise
        if not args.quiet:
            print(_summary(out, kind, args.what, shapes, report))
    return status


def _summary(out: str, kind: str, what: str, shapes: dict[str, Any],
             report: dict[str, Any]) -> str:
    line = (f"export: wrote {out} ({kind}, {what}, input "
            f"{', '.join(f'{n} {s}' for n, s in shapes.items())}); {report['runner']}, batch "
            f"{report['batch']}: ")
    line += "; ".join(describe_row(n, r) for n, r in report["per_output"].items())
    return line + f"; report {out}.json"


def _preprocess_summary(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The checkpoint's preprocessing for the report; a mean image is summarised (the
    exported ONNX model carries it in full in its metadata)."""
    if not spec:
        return None
    out = dict(spec)
    mean = np.asarray(out.get("mean"))
    if mean.ndim == 3:
        out["mean"] = f"{mean.shape[0]}x{mean.shape[1]}x3 mean image (channel means "\
                      f"{[round(float(v), 4) for v in mean.reshape(-1, 3).mean(0)]})"
    return out


def _onnx_version() -> str:
    import onnx
    return onnx.__version__


def _main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
