"""``validate``: a checkpoint (or the authors' feature files) against the paper's numbers.

Published figures are compared only on the published test sets (recognised by their counts)
and with the recipe and protocol that produced them; every other row says ``n/a`` and why.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from porting.argtypes import (
    float_in,
    int_in,
    nonnegative_float,
    nonnegative_int,
    positive_int,
)
from porting.boundary import (
    check_output_dir,
    check_output_file,
    require_dir,
    require_file,
    resolve_device,
    run_cli,
)
from porting.preprocess import IMAGE_POLICY
from porting.recipes import RECIPES

from . import metrics
from .published import MODELS, select, split_mismatch
from .report import (
    check_status,
    cmc_title,
    compare_figures,
    comparison_table,
    header,
    listing,
    matrix_table,
    plot_cmc,
    protocol_table,
    scoring_notes,
    write_json,
)
from .run import (
    ExtractOptions,
    ReRank,
    cuhk03_counts,
    extract_split,
    load_for_validation,
    market_counts,
    mean_over_splits,
    score_cuhk03,
    score_market,
    use_recipe,
)

DATASETS = ("market1501", "dukemtmc", "cuhk03", "oxford5k")
# The last convolutional map, for MAC on Oxford5k (Caffe blob / MatConvNet var names).
MAC_VARS = ("conv5_3", "relu5_3", "conv5", "relu5", "res5cx", "res5c")

EPILOG = """\
examples:
  # the paper's ResNet-50 figures (79.51 / 59.87, Table 2) come from the v1.0 test code;
  # also multi-query (Table 3, README) and the camera-pair summary (section 4.2):
  reid-porting validate --root Market-1501-v15.09.15 --checkpoint net-epoch-75.pth \\
      --recipe market-matconvnet-v1 --multi-query --camera-pairs --json r.json \\
      --plot cmc.png --check
  # the authors' own feature files (README figures 80.82 / 62.30), k-reciprocal
  # re-ranking and ranked-list pictures of the 5 queries with the lowest AP:
  reid-porting validate --root Market-1501-v15.09.15 \\
      --features resnet_query.mat resnet_gallery.mat --arch resnet50 \\
      --recipe market-matconvnet --re-rank --visrank 10 --visrank-queries 5 \\
      --visrank-order worst --visrank-dir ranked
  # CUHK03 (detected, old protocol) averaged over the paper's 20 splits:
  reid-porting validate --dataset cuhk03 --root cuhk-03.mat --checkpoint net-epoch-75.pth \\
      --cuhk03-splits 20 --cache-dir features-cache

exit status: 0 done (with --check: every compared figure met); 1 a figure missed, or none
to compare; 2 an error, or --check on data that is not a published test set.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting validate",
        description="Extract features exactly as the authors did, score them exactly as the "
        "official evaluation code does, and compare with the published numbers, on the "
        "published test sets only (recognised by their counts).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", choices=DATASETS, default="market1501",
                   help="test set (default market1501); Market-1501+500k is market1501 with "
                   "--distractors")
    p.add_argument("--root", required=True,
                   help="dataset folder (Market-1501 / DukeMTMC-reID layout; Oxford5k: a folder "
                   "with gt_files_170407/ and the images in oxbuild_images/ or jpg/) or "
                   "cuhk-03.mat")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a reid-porting checkpoint")
    src.add_argument("--features", nargs=2, metavar=("QUERY", "GALLERY"),
                     help="feature files (.mat with 'ff' N x D, v7.3 included, or .npy) in the "
                     "dataset's file order, e.g. the authors' resnet_query.mat resnet_gallery.mat")
    p.add_argument("--recipe", choices=sorted(RECIPES),
                   help="descriptor recipe and its script's preprocessing (default: the "
                   "checkpoint's; with --features: unknown unless given). Figures made with "
                   "another recipe are shown n/a")
    p.add_argument("--arch", choices=["caffenet", "vgg16", "resnet50"],
                   help="architecture for the published targets (default: the checkpoint's)")
    p.add_argument("--model", choices=MODELS,
                   help="model variant whose figures to compare: I+V (the paper's), I or V "
                   "(Table 2 baselines), contrastive (section 4.2); default: the checkpoint's, "
                   "else I+V")
    p.add_argument("--target", choices=["paper", "readme", "dxy", "all"], default="all",
                   help="which published figures: the paper's, the authors' README, D-X-Y's "
                   "Caffe README (turns on --dxy), or all (default)")
    p.add_argument("--tolerance", type=nonnegative_float, default=0.5,
                   help="points below a published figure still counted as met (default 0.5)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a compared figure is missed by more than --tolerance, "
                   "2 when the data is not a published test set")
    p.add_argument("--rank-size", type=nonnegative_int, default=metrics.OFFICIAL_RANK_SIZE,
                   help="official truncation of each ranking (default 2000; 0 = whole gallery)")
    p.add_argument("--distractors",
                   help="Market-1501+500k: 100k, 200k, 500k, all or a count of distractors "
                   "added to the gallery")
    p.add_argument("--distractor-dir",
                   help="folder of the distractor images (default: ROOT/images, where "
                   "distractors_500k.zip extracts, else ROOT/distractors_500k)")
    p.add_argument("--distractor-names", choices=["market", "any"], default="market",
                   help="distractor file names: Market pattern (default) or any *.jpg, all "
                   "labelled id 0")
    p.add_argument("--multi-query", action="store_true",
                   help="also multi-query: max/avg pooling, the lines as _fast.m prints them "
                   "and its 1-NN query expansion (extracts gt_bbox; needs --checkpoint)")
    p.add_argument("--camera-pairs", action="store_true",
                   help="also the 6x6 camera-pair mAP / rank-1 matrices and their "
                   "cross-camera mean (paper section 4.2, Fig. 6)")
    p.add_argument("--re-rank", action="store_true",
                   help="also k-reciprocal re-ranking (Zhong et al., CVPR 2017) scored by the "
                   "official protocol")
    p.add_argument("--re-rank-k1", type=positive_int, default=20, help="re-ranking k1 (default 20)")
    p.add_argument("--re-rank-k2", type=positive_int, default=6, help="re-ranking k2 (default 6)")
    p.add_argument("--re-rank-lambda", type=float_in(0.0, 1.0), default=0.3,
                   help="re-ranking lambda, weight of the original distance (default 0.3)")
    p.add_argument("--dxy", action="store_true",
                   help="also D-X-Y's evaluation.m (cosine and Euclidean, whole gallery); a "
                   "caffe-dxy checkpoint then extracts as extract_feature.py without "
                   "--center_only (recipe caffe-dxy-oversample)")
    p.add_argument("--feature-var", help="graph var used as the feature (default: the "
                   "checkpoint's; Oxford5k: the last convolutional map)")
    p.add_argument("--cuhk03-split", type=int_in(1, 20), default=6,
                   help="CUHK03 test split, 1-based (default 6, as the authors' prepare_test.m)")
    p.add_argument("--cuhk03-splits", type=int, choices=[1, 20], default=1,
                   help="1: the one --cuhk03-split, as the authors' code (default); 20: the "
                   "mean over the 20 splits, as the paper reports (needs --checkpoint)")
    p.add_argument("--cuhk03-kind", choices=["detected", "labeled"], default="detected",
                   help="CUHK03 boxes (default detected, the paper's)")
    p.add_argument("--seed", type=int, default=0, help="CUHK03 single-shot gallery draws and "
                   "--visrank-order random (default 0)")
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--batch-size", type=positive_int, default=64,
                   help="images per forward pass when extracting (default 64)")
    p.add_argument("--workers", type=nonnegative_int, default=None,
                   help="DataLoader worker processes")
    p.add_argument("--amp", action="store_true", help="mixed precision (not exact)")
    p.add_argument("--exact", action="store_true", help="extract with the source framework's "
                   "arithmetic bit for bit (default: the fast test-time forms, porting.inference)")
    p.add_argument("--cache-dir", help="cache features keyed by checkpoint+recipe+files")
    p.add_argument("--features-out", help="write features as PREFIX_<split>.npy/.mat")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="skip unreadable images (listed in the report) instead of failing")
    p.add_argument("--json", help="write the full results as JSON")
    p.add_argument("--record", action="store_true",
                   help="record the scores and the published-figure comparison in the "
                   "checkpoint (its measurements, which porting.save_pretrained's model card "
                   "states); the checkpoint is rewritten atomically, in its format, and not "
                   "when --check fails")
    p.add_argument("--plot", help="write the CMC curves as a PNG")
    p.add_argument("--visrank", type=positive_int, metavar="K",
                   help="write ranked-list PNGs: each query and its top K gallery images "
                   "(green true match, red false, grey junk)")
    p.add_argument("--visrank-queries", metavar="N|IDS",
                   help="which queries for --visrank: N of them (default 10, chosen by "
                   "--visrank-order) or comma-separated 0-based indices or query file names")
    p.add_argument("--visrank-order", choices=["first", "worst", "random"], default="first",
                   help="which N queries --visrank draws: the first in file order (default), "
                   "the worst (lowest AP first; queries without a true match have none) or "
                   "random ones (--seed)")
    p.add_argument("--visrank-dir", default="visrank",
                   help="folder for the --visrank PNGs (default ./visrank)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def _load_features(path: str) -> torch.Tensor:
    """A feature file as a checked N x D float32 tensor (:mod:`.features`: 2-D, real,
    finite; errors name the file)."""
    from .features import load_features

    return load_features(path)


def _rank(env: str = "RANK") -> int:
    return int(os.environ.get(env, "0"))


def _check_args(args) -> None:
    if args.features and args.multi_query:
        raise ValueError("--multi-query extracts the gt_bbox images: give --checkpoint")
    if args.features and args.cuhk03_splits > 1:
        raise ValueError("--cuhk03-splits 20 extracts every split: give --checkpoint (one "
                         "feature file pair holds one split)")
    if args.visrank is not None and args.visrank < 1:
        raise ValueError(f"--visrank K needs K >= 1, got {args.visrank}")
    if args.dataset not in ("market1501", "dukemtmc"):
        flags = [f for f, on in (("--multi-query", args.multi_query),
                                 ("--camera-pairs", args.camera_pairs),
                                 ("--re-rank", args.re_rank), ("--dxy", args.dxy),
                                 ("--visrank", args.visrank is not None)) if on]
        if flags:
            raise ValueError(f"{', '.join(flags)}: Market-1501 / DukeMTMC-reID protocols, not "
                             f"for --dataset {args.dataset}")
    if args.distractors and args.dataset != "market1501":
        raise ValueError("--distractors: Market-1501+500k only (--dataset market1501)")
    # The outside world, before any extraction: outputs, the device, the data's folder.
    check_output_file(args.json, "--json")
    check_output_file(args.plot, "--plot")
    if args.visrank is not None:
        check_output_dir(args.visrank_dir, "--visrank-dir")
    check_output_dir(args.cache_dir, "--cache-dir")
    if args.features_out:
        check_output_file(args.features_out + "_query.npy", "--features-out")
    args.device = resolve_device(args.device)
    root = Path(args.root)
    if args.dataset == "cuhk03":
        require_file(root, "--root")
    else:
        require_dir(root, "--root")


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    if args.record and not args.checkpoint:
        raise ValueError("--record writes into the checkpoint: give --checkpoint")
    quiet = args.quiet or _rank() != 0
    opts = ExtractOptions(args.batch_size, args.workers, args.device, args.amp, args.cache_dir,
                          args.features_out, progress=not quiet)
    loaded = load_for_validation(args.checkpoint, args.recipe) if args.checkpoint else None
    if loaded is not None:
        from porting.inference import set_exact

        set_exact(loaded.model, args.exact)
    arch = args.arch or (loaded.arch if loaded else None)
    model = args.model or (loaded.variant if loaded else None) or "I+V"
    dxy = args.dxy or args.target == "dxy"
    if loaded is not None and dxy and args.recipe is None and loaded.recipe == "caffe-dxy":
        use_recipe(loaded, "caffe-dxy-oversample")  # extract_prediction.sh: no --center_only
    rank_size = args.rank_size or None
    info: dict[str, Any] = {
        "model": (f"{args.checkpoint} ({arch or 'architecture unknown'}, {model})" if loaded
                  else f"feature files {' '.join(args.features)} "
                  f"({arch or 'give --arch'}, {model})")}
    payload: dict[str, Any] = {"dataset": args.dataset, "arch": arch, "model": model,
                               "recipe": loaded.recipe if loaded else args.recipe,
                               "checkpoint": args.checkpoint,
                               "checkpoint_sha256": loaded.sha256 if loaded else None,
                               "units": "mAP/mINP/rank in percent; cmc and ap as fractions"}
    extra_text: list[str] = []
    curves: dict[str, list[float]] = {}
    notes: dict[str, str] = {}  # which queries the figures count, and what each figure is
    if args.dataset == "oxford5k":
        res, counts = _oxford(args, loaded, opts)
        payload.update(res)
        dataset, protocols = "oxford5k", {"full-image MAC": {"mAP": res["mAP"]}}
    elif args.dataset == "cuhk03":
        protocols, counts, splits = _cuhk03(args, loaded, opts)
        payload.update({"results": protocols, "splits": splits})
        dataset = "cuhk03"
        info["splits"] = (f"{splits[0]} only (as the authors' code; the paper averages 20: "
                          "--cuhk03-splits 20)" if len(splits) == 1
                          else f"mean over splits {splits[0]}..{splits[-1]} (as the paper)")
    else:
        result, data = _market(args, loaded, opts, rank_size, dxy)
        dataset = "market1501+500k" if args.distractors else args.dataset
        protocols = dict(result.protocols)
        if args.distractors:  # Table 6 names the single-query protocol by the gallery size
            protocols[f"gallery={len(data.gallery.pids)}"] = protocols["single-query"]
        counts = market_counts(data)
        ours = result.summary
        payload.update({"mAP": ours["mAP"], "mINP": ours.get("mINP"), "rank1": ours["rank1"],
                        "rank20": ours["rank20"], "cmc": result.single.matched().cmc.tolist(),
                        "ap": result.single.ap.tolist(), "inp": result.single.inp.tolist(),
                        "n_query": len(data.query.pids), "n_gallery": len(data.gallery.pids),
                        "rank_size": rank_size, "summary": ours, **result.extra})
        extra_text += _market_text(args, result, data, payload)
        curves = result.curves
        skipped = [str(data.query.names[i])
                   for i in np.flatnonzero(~result.single.has_match)]
        notes = scoring_notes(len(data.query.pids), skipped, rank_size
                              if rank_size and rank_size < len(data.gallery.pids) else None)
        payload.update({"queries_scored": len(data.query.pids) - len(skipped),
                        "queries_skipped": skipped, "figures_count": notes})
    recipe = loaded.recipe if loaded else args.recipe
    reason = split_mismatch(dataset, counts)
    info["dataset"] = (f"{dataset} at {args.root}: "
                       + ", ".join(f"{v:,} {k}" for k, v in counts.items()
                                   if k != "distractors" or v))
    info["published test set"] = ("yes" if reason is None
                                  else f"no, {split_mismatch(dataset, counts, every=True)}")
    info["recipe"] = recipe or "unknown (feature files; give --recipe)"
    if recipe:
        info["recipe"] += f": {RECIPES[recipe].source}"
    info["protocols"] = ", ".join(protocols) + (
        f" (rank lists cut at {rank_size})" if rank_size and "single-query" in protocols
        and rank_size < payload.get("n_gallery", rank_size + 1) else "")
    if loaded is not None:  # how the images were read (porting.preprocess.IMAGE_POLICY)
        info["images"] = ("by content as MATLAB's imread; grey -> RGB; CMYK, >8-bit, <2x2 "
                          "refused")
        payload["image_policy"] = IMAGE_POLICY
    figures = (select(dataset, arch, model, source_prefix=None if args.target == "all"
                      else f"{args.target}/") if arch else [])
    rows = compare_figures(protocols, figures, args.tolerance, split_reason=reason,
                           recipe=recipe)
    payload.update({"protocols": protocols, "counts": counts,
                    "published_test_set": {"is": reason is None, "reason": reason},
                    "published": [dict(c.__dict__) for c in rows]})
    code, message = check_status(rows, reason, args.tolerance)
    if args.check:
        payload["check"] = {"exit": code, "message": message}
    if _rank() != 0:
        return 0
    print(header({**info, **notes}))
    print()
    print(protocol_table(protocols))
    if rows:
        print()
        print(comparison_table(rows))
    else:
        print(f"\nno published figure for dataset={dataset} arch={arch} model={model} "
              f"target={args.target} with the protocols that ran"
              + ("" if arch else " (give --arch)"))
    for text in extra_text:
        print()
        print(text)
    if args.json:
        write_json(args.json, payload)
    if args.record and not (args.check and code != 0):  # a failed check writes nothing
        from .run import record_validation

        key = record_validation(args.checkpoint, payload)
        print(f"recorded {key} in {args.checkpoint}")
    if args.plot and curves:
        name = Path(args.checkpoint or args.features[0]).name
        plot_cmc(args.plot, curves, figures=protocols, title=cmc_title(
            f"{arch} {model} ({name})" if arch else f"{name} ({model})", dataset,
            ", ".join(x for x in (f"recipe {recipe}" if recipe else "",
                                  f"{payload['queries_scored']:,} of {payload['n_query']:,} "
                                  "queries scored" if notes else "") if x)))
    if args.check:
        print(message, file=sys.stderr)
        return code
    return 0


def _market_text(args, result, data, payload: dict[str, Any]) -> list[str]:
    """Camera-pair matrices, skipped images, ranked-list pictures: text blocks to print."""
    out = []
    if result.camera_pairs is not None:
        cp = result.camera_pairs
        out.append(matrix_table(cp.ap_cm, "camera pairs, mAP (%) (draw_confusion_matrix.m)"))
        out.append(matrix_table(cp.r1_cm, "camera pairs, rank-1 (%)"))
    if data.skipped:
        payload["skipped_images"] = [str(s) for s in data.skipped]
        out.append(listing("skipped unreadable images", payload["skipped_images"]))
    if args.visrank:
        from .visrank import select_queries, visualize_ranked_results

        q, g = data.query, data.gallery
        chosen = select_queries(args.visrank_queries, q.names, order=args.visrank_order,
                                ap=result.single.ap, has_match=result.single.has_match,
                                seed=args.seed)
        files = visualize_ranked_results(
            q.paths, g.paths, result.single.ranking, q.pids, g.pids, q.camids, g.camids,
            args.visrank_dir, topk=args.visrank, queries=chosen, query_names=q.names,
            distances=result.ranked_distances(chosen, args.visrank), ap=result.single.ap)
        payload["visrank"] = [str(f) for f in files]
        sheets = len(files) - len(chosen)
        out.append(f"ranked lists of {len(chosen)} queries ({args.visrank_order}), top "
                   f"{args.visrank}: {len(chosen)} PNG(s)"
                   + (f" + {sheets} contact sheet(s)" if sheets else "")
                   + f" in {args.visrank_dir}/")
    if "re_rank" in result.extra:
        rr = result.extra["re_rank"]
        out.append(f"k-reciprocal re-ranking: k1={rr['k1']} k2={rr['k2']} "
                   f"lambda={rr['lambda_value']}")
    return out


def _market(args, loaded, opts: ExtractOptions, rank_size, dxy: bool):
    from .datasets import DatasetError, load_dukemtmc, load_market1501

    check = "none" if args.features else "header"
    parts = ["query", "gallery"] + (["gt_bbox"] if args.multi_query else [])
    try:
        if args.dataset == "market1501":
            data = load_market1501(args.root, parts=parts, distractors=args.distractors,
                                   distractor_dir=args.distractor_dir,
                                   distractor_names=args.distractor_names,
                                   check_images=check, skip_bad_images=args.skip_bad_images)
        else:
            data = load_dukemtmc(args.root, parts=parts, check_images=check,
                                 skip_bad_images=args.skip_bad_images)
    except DatasetError as exc:  # name the command-line flags, not the Python arguments
        msg = str(exc).replace("pass distractor_dir", "give --distractor-dir DIR")
        msg = msg.replace("pass distractor_names='any'", "give --distractor-names any")
        raise DatasetError(msg) from None
    for name, split, folder in (("query", data.query, "query/"),
                                ("gallery", data.gallery, "bounding_box_test/")):
        if len(split.pids) == 0:  # before anything is extracted
            raise DatasetError(f"--root {args.root}: the {name} split ({folder}) holds no "
                               "image; nothing to rank")
    if args.features:
        from .features import check_features

        qf, gf = (_load_features(f) for f in args.features)
        check_features(qf, gf, args.features, len(data.query.pids), len(data.gallery.pids))
        gt = None
    else:
        qf = extract_split(loaded, data.query, "query", opts)
        gf = extract_split(loaded, data.gallery, "gallery", opts)
        gt = extract_split(loaded, data.gt_bbox, "gt_bbox", opts) if args.multi_query else None
    re_rank = (ReRank(args.re_rank_k1, args.re_rank_k2, args.re_rank_lambda) if args.re_rank
               else None)
    return score_market(qf, gf, data, rank_size, args.camera_pairs, gt, re_rank=re_rank,
                        dxy=dxy, keep_ranking=args.visrank is not None,
                        progress=not (args.quiet or _rank() != 0)), data


def _oxford(args, loaded, opts: ExtractOptions) -> tuple[dict[str, Any], dict[str, int]]:
    """Oxford5k: MAC of the full-size database images and query crops (paper §4.3)."""
    import dataclasses

    from .datasets import load_oxford5k
    from .extract import extract_features
    from .run import score_oxford

    root = Path(args.root)
    images = next((root / d for d in ("oxbuild_images", "jpg", "images") if (root / d).is_dir()),
                  root / "oxbuild_images")
    data = load_oxford5k(root / "gt_files_170407", images, skip_bad_images=args.skip_bad_images)
    counts = {"database images": len(data.paths), "queries": len(data.queries)}
    if args.features:
        from .features import check_features

        db, qf = (_load_features(f) for f in reversed(args.features))
        check_features(qf, db, args.features, len(data.queries), len(data.paths))
        return score_oxford(db, qf, data), counts
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
    loaded.recipe = recipe
    common = {"batch_size": 1, "num_workers": opts.num_workers, "device": opts.device,
              "amp": opts.amp, "progress": opts.progress, "feature_var": var}
    db = extract_features(model, list(data.paths), pre, recipe, desc="database", **common)
    crops = [data.query_crop(q) for q in data.queries]
    qf = extract_features(model, crops, pre, recipe, desc="queries", **common)
    return score_oxford(db, qf, data), counts


def _cuhk03(args, loaded, opts: ExtractOptions
            ) -> tuple[dict[str, dict[str, float]], dict[str, int], list[int]]:
    """CUHK03 old protocol: one split (default, as the authors' code) or the mean of 20."""
    from .datasets import load_cuhk03

    splits = [args.cuhk03_split] if args.cuhk03_splits == 1 else list(range(1, 21))
    if loaded is not None and args.recipe is None and loaded.recipe == "market-matconvnet":
        # The authors score CUHK03 with test_cuhk03_res.m: 224, raw pool5, no flip.
        use_recipe(loaded, "cuhk03-matconvnet")
    per_split = []
    for s in splits:
        split = load_cuhk03(args.root, split=s, kind=args.cuhk03_kind)
        if args.features:
            from .features import check_features

            f1, f2 = (_load_features(f) for f in args.features)
            check_features(f1, f2, args.features, len(split.label_a), len(split.label_b),
                           names=("camera_a", "camera_b"))
        else:
            tag = "" if len(splits) == 1 else f"split{s}_"
            f1 = extract_split(loaded, split.camera_a, f"{tag}camera_a", opts)
            f2 = extract_split(loaded, split.camera_b, f"{tag}camera_b", opts)
        per_split.append(score_cuhk03(f1, f2, split.label_a, split.label_b, args.seed))
    return mean_over_splits(per_split), cuhk03_counts(args.root), splits


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)
