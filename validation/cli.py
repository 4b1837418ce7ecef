"""``validate``: a checkpoint (or the authors' feature files) against the paper's numbers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from porting.checkpoint import CheckpointError

from . import metrics
from .published import targets
from .report import compare_published, plot_cmc, table, write_json
from .run import ExtractOptions, extract_split, load_for_validation, score_cuhk03, score_market

DATASETS = ("market1501", "dukemtmc", "cuhk03", "oxford5k")
# The last convolutional map, for MAC on Oxford5k (Caffe blob / MatConvNet var names).
MAC_VARS = ("conv5_3", "relu5_3", "conv5", "relu5", "res5cx", "res5c")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="validate",
        description="Extract features exactly as the authors did, score them exactly as the "
        "official evaluation code does, and compare with the published numbers.",
    )
    p.add_argument("--dataset", choices=DATASETS, default="market1501")
    p.add_argument("--root", required=True,
                   help="dataset folder (Market-1501 / DukeMTMC-reID layout; Oxford5k: a folder "
                   "with gt_files_170407/ and the images in oxbuild_images/ or jpg/) or "
                   "cuhk-03.mat")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a reid-porting checkpoint")
    src.add_argument("--features", nargs=2, metavar=("QUERY", "GALLERY"),
                     help="feature files (.mat with 'ff' N x D, v7.3 included, or .npy) in the "
                     "dataset's file order, e.g. the authors' resnet_query.mat resnet_gallery.mat")
    p.add_argument("--recipe", help="descriptor recipe (default: the checkpoint's)")
    p.add_argument("--arch", choices=["caffenet", "vgg16", "resnet50"],
                   help="architecture for the published targets (default: the checkpoint's)")
    p.add_argument("--target", choices=["paper", "readme", "dxy", "all"], default="all",
                   help="which published figures to compare with (default all)")
    p.add_argument("--tolerance", type=float, default=0.5,
                   help="points below a published figure still counted as met (default 0.5)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a published figure is missed by more than --tolerance")
    p.add_argument("--rank-size", type=int, default=metrics.OFFICIAL_RANK_SIZE,
                   help="official truncation of each ranking (default 2000; 0 = whole gallery)")
    p.add_argument("--distractors", help="Market-1501+500k: 100k, 200k, 500k, all or a count")
    p.add_argument("--multi-query", action="store_true",
                   help="also the multi-query protocol (extracts gt_bbox)")
    p.add_argument("--camera-pairs", action="store_true", help="camera-pair matrices")
    p.add_argument("--feature-var", help="graph var used as the feature (default: the "
                   "checkpoint's; Oxford5k: the last convolutional map)")
    p.add_argument("--cuhk03-split", type=int, default=6)
    p.add_argument("--cuhk03-kind", choices=["detected", "labeled"], default="detected")
    p.add_argument("--seed", type=int, default=0, help="CUHK03 single-shot gallery draws")
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None, help="DataLoader worker processes")
    p.add_argument("--amp", action="store_true", help="mixed precision (not exact)")
    p.add_argument("--cache-dir", help="cache features keyed by checkpoint+recipe+files")
    p.add_argument("--features-out", help="write features as PREFIX_<split>.npy/.mat")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="skip unreadable images (listed in the report) instead of failing")
    p.add_argument("--json", help="write the full results as JSON")
    p.add_argument("--plot", help="write the CMC curve as a PNG")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def _load_features(path: str) -> torch.Tensor:
    p = Path(path)
    if p.suffix == ".npy":
        return torch.from_numpy(np.load(p).astype(np.float32))
    from porting.converters.matfile import load_mat

    data = load_mat(p)
    arr = data.get("ff")
    if arr is None:
        arrays = [v for v in data.values() if isinstance(v, np.ndarray) and v.ndim == 2]
        if len(arrays) != 1:
            raise ValueError(f"{path}: no 'ff' variable and {len(arrays)} 2-D arrays")
        arr = arrays[0]
    return torch.from_numpy(np.asarray(arr, dtype=np.float32))


def _rank(env: str = "RANK") -> int:
    return int(os.environ.get(env, "0"))


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = args.quiet or _rank() != 0
    opts = ExtractOptions(args.batch_size, args.workers, args.device, args.amp, args.cache_dir,
                          args.features_out, progress=not quiet)
    loaded = load_for_validation(args.checkpoint, args.recipe) if args.checkpoint else None
    arch = args.arch or (loaded.arch if loaded else None)
    rank_size = args.rank_size or None
    payload: dict[str, Any] = {"dataset": args.dataset, "arch": arch,
                               "recipe": loaded.recipe if loaded else None,
                               "checkpoint": args.checkpoint,
                               "checkpoint_sha256": loaded.sha256 if loaded else None,
                               "units": "mAP/rank in percent; cmc and ap as fractions"}
    curves: dict[str, list[float]] = {}
    if args.dataset == "oxford5k":
        res = _oxford(args, loaded, opts)
        ours = {"mAP": res["mAP"]}
        payload.update(res)
        comparisons = compare_published(ours, _targets("oxford5k", arch, "full-image MAC", args),
                                        args.tolerance)
    elif args.dataset == "cuhk03":
        ours_by_protocol = _cuhk03(args, loaded, opts)
        payload["results"] = ours_by_protocol
        comparisons = []
        for protocol, ours in ours_by_protocol.items():
            comparisons += compare_published(ours, _targets("cuhk03", arch, protocol, args),
                                             args.tolerance)
        ours = ours_by_protocol["single-shot"]
    else:
        result, data = _market(args, loaded, opts, rank_size)
        ours = result.summary
        dataset = "market1501+500k" if args.distractors else args.dataset
        protocol = (f"gallery={len(data.gallery.pids)}" if args.distractors
                    else "single-query")
        comparisons = compare_published(ours, _targets(dataset, arch, protocol, args),
                                        args.tolerance)
        payload.update({"mAP": ours["mAP"], "rank1": ours["rank1"],
                        "cmc": result.single.cmc.tolist(), "ap": result.single.ap.tolist(),
                        "n_query": len(data.query.pids), "n_gallery": len(data.gallery.pids),
                        "rank_size": rank_size, "summary": ours, **result.extra})
        if data.skipped:
            payload["skipped_images"] = [str(s) for s in data.skipped]
        curves["single query"] = result.single.cmc.tolist()
    payload["published"] = [c.__dict__ for c in comparisons]
    if _rank() != 0:
        return 0
    print(table(ours, comparisons))
    if not comparisons:
        print(f"\nno published figure for dataset={args.dataset} arch={arch} "
              f"target={args.target}" + ("" if arch else " (give --arch)"))
    if args.json:
        write_json(args.json, payload)
    if args.plot and curves:
        plot_cmc(args.plot, curves)
    if args.check:
        missed = [c for c in comparisons if not c.within]
        if not comparisons or missed:
            names = ", ".join(f"{c.key} ({c.delta:+.2f})" for c in missed) or "none to check"
            print(f"check failed: {names}", file=sys.stderr)
            return 1
    return 0


def _targets(dataset: str, arch: str | None, protocol: str, args) -> list:
    if arch is None:
        return []
    prefix = None if args.target == "all" else f"{args.target}/"
    return targets(dataset, arch, protocol=protocol, source_prefix=prefix)


def _market(args, loaded, opts: ExtractOptions, rank_size):
    from .datasets import load_dukemtmc, load_market1501

    check = "none" if args.features else "header"
    parts = ["query", "gallery"] + (["gt_bbox"] if args.multi_query else [])
    if args.dataset == "market1501":
        data = load_market1501(args.root, parts=parts, distractors=args.distractors,
                               check_images=check, skip_bad_images=args.skip_bad_images)
    else:
        data = load_dukemtmc(args.root, parts=parts, check_images=check,
                             skip_bad_images=args.skip_bad_images)
    if args.features:
        qf, gf = (_load_features(f) for f in args.features)
        for name, f, split in (("query", qf, data.query), ("gallery", gf, data.gallery)):
            if f.shape[0] != len(split.pids):
                raise ValueError(f"{args.features[name == 'gallery']}: {f.shape[0]} rows but "
                                 f"the dataset's {name} has {len(split.pids)} images")
        gt = None
    else:
        qf = extract_split(loaded, data.query, "query", opts)
        gf = extract_split(loaded, data.gallery, "gallery", opts)
        gt = extract_split(loaded, data.gt_bbox, "gt_bbox", opts) if args.multi_query else None
    return score_market(qf, gf, data, rank_size, args.camera_pairs, gt), data


def _oxford(args, loaded, opts: ExtractOptions) -> dict[str, Any]:
    """Oxford5k: MAC of the full-size database images and query crops (paper §4.3)."""
    import dataclasses

    from .datasets import load_oxford5k
    from .extract import extract_features
    from .run import score_oxford

    root = Path(args.root)
    images = next((root / d for d in ("oxbuild_images", "jpg", "images") if (root / d).is_dir()),
                  root / "oxbuild_images")
    data = load_oxford5k(root / "gt_files_170407", images, skip_bad_images=args.skip_bad_images)
    if args.features:
        db, qf = (_load_features(f) for f in reversed(args.features))
        return score_oxford(db, qf, data)
    model = loaded.model
    var = args.feature_var
    if var is None and hasattr(model, "var_names"):
        names = set(model.var_names())
        var = next((v for v in MAC_VARS if v in names), None)
        if var is None:
            raise ValueError(f"{args.checkpoint}: no last convolutional map among {MAC_VARS}; "
                             "give --feature-var")
    # Full-size images, no crop: only the colour order and the mean of the checkpoint apply.
    pre = dataclasses.replace(loaded.preprocess, resize=None, resize_method="none",
                              crop="none")
    recipe = args.recipe or "mac"
    common = {"batch_size": 1, "num_workers": opts.num_workers, "device": opts.device,
              "amp": opts.amp, "progress": opts.progress, "feature_var": var}
    db = extract_features(model, list(data.paths), pre, recipe, desc="database", **common)
    crops = [data.query_crop(q) for q in data.queries]
    qf = extract_features(model, crops, pre, recipe, desc="queries", **common)
    return score_oxford(db, qf, data)


def _cuhk03(args, loaded, opts: ExtractOptions) -> dict[str, dict[str, float]]:
    from porting.preprocess import cuhk03_matconvnet

    from .datasets import load_cuhk03

    split = load_cuhk03(args.root, split=args.cuhk03_split, kind=args.cuhk03_kind)
    if args.features:
        f1, f2 = (_load_features(f) for f in args.features)
    else:
        if args.recipe is None and loaded.recipe == "market-matconvnet":
            # The authors score CUHK03 with test_cuhk03_res.m: 224, raw pool5, no flip.
            loaded.recipe = "cuhk03-matconvnet"
            loaded.preprocess = cuhk03_matconvnet(mean_image=loaded.preprocess.mean)
        f1 = extract_split(loaded, split.camera_a, "camera_a", opts)
        f2 = extract_split(loaded, split.camera_b, "camera_b", opts)
    return score_cuhk03(f1, f2, split.label_a, split.label_b, args.seed)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
