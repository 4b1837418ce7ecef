"""``reid-porting train``: the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator

import torch

from porting.argtypes import (
    float_in,
    int_in,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)
from porting.boundary import (
    check_output_dir,
    error_line,
    require_dir,
    require_file,
    resolve_device,
    run_cli,
)
from porting.cli import HelpFormatter, examples_epilog
from porting.outputs import output_dir
from porting.train.distributed import torch_distributed
from porting.train.guard import DivergedError
from porting.train.recipe import TrainConfig
from porting.train.trainer import Trainer


def _pair_floats(text: str) -> tuple[float, float]:
    parts = [nonnegative_float(x) for x in str(text).split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("expected FILTER,BIAS")
    return parts[0], parts[1]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting train", epilog=examples_epilog("train"),
        description="Train the paper's two-stream re-ID network with the authors' MatConvNet "
        "recipe (default) or D-X-Y's Caffe recipe, and the paper's loss variants (Table 2, "
        "Sec. 4.2). Run under torchrun for several GPUs/processes: torchrun --nproc_per_node N "
        "-m porting.train ...",
        formatter_class=HelpFormatter)
    p.add_argument("data_root", help="Market-1501/DukeMTMC-reID folder (with bounding_box_train),"
                   " or cuhk-03.mat for --dataset cuhk03")
    p.add_argument("-o", "--out", required=True, help="output folder (checkpoints, logs); "
                   "removed again if the run fails before writing anything")
    p.add_argument("--dataset", default="market1501", choices=["market1501", "dukemtmc",
                                                               "cuhk03"],
                   help="which training set data_root holds")
    p.add_argument("--arch", default="resnet50", choices=["resnet50", "caffenet", "vgg16"],
                   help="backbone")
    p.add_argument("--recipe", default="matconvnet",
                   choices=["matconvnet", "market-matconvnet", "caffe-dxy"],
                   help="the authors' MatConvNet recipe or D-X-Y's Caffe re-implementation")
    v = p.add_argument_group("model variant (the paper's Table 2 and Sec. 4.2)")
    v.add_argument("--losses", default="I+V", choices=["I+V", "I", "V"],
                   help="identification + verification (the paper's model, weights 0.5/0.5/1), "
                        "identification only, or verification only")
    v.add_argument("--verification", default="softmax", choices=["softmax", "contrastive"],
                   help="the 2-way softmax over fc9, or the contrastive loss the paper compares "
                        "with (on the L2-normalised pooled descriptors)")
    v.add_argument("--contrastive-margin", type=positive_float, default=1.0,
                   help="margin of the contrastive loss (the paper does not give one)")
    p.add_argument("--init", default=None, help="a converted checkpoint (ImageNet .mat/"
                   "caffemodel converted by convert-matconvnet/convert-caffe, or a two-stream "
                   "one): its backbone is used, the heads are re-initialised. Default: random")
    p.add_argument("--width", type=positive_int, default=None,
                   help="ResNet-50 width (random backbone)")
    p.add_argument("--trunk-kwargs", default=None,
                   help='JSON kwargs of a random backbone: {"width": 8} for resnet50, '
                        '{"widths": [8,16,16,16,16], "fc_width": 32} for caffenet/vgg16')
    g = p.add_argument_group("recipe overrides (defaults: the recipe's)")
    g.add_argument("--epochs", type=positive_int, default=None, help="MatConvNet epochs")
    g.add_argument("--lr", default=None, help='MatConvNet global rates, e.g. "0.1*70,0.01*5"')
    g.add_argument("--batch-size", type=positive_int, default=None, help="pairs per (global) batch")
    g.add_argument("--iter-size", type=positive_int, default=None, help="caffe-dxy iter_size")
    g.add_argument("--base-lr", type=positive_float, default=None, help="caffe-dxy base_lr")
    g.add_argument("--stepsize", type=positive_int, default=None, help="caffe-dxy stepsize")
    g.add_argument("--max-iter", type=positive_int, default=None, help="caffe-dxy max_iter")
    g.add_argument("--dropout", type=float_in(0.0, 1.0, high_open=True), default=None,
                   help="head dropout rate, in [0, 1)")
    g.add_argument("--image-size", type=positive_int, default=None, help="training resize (256)")
    g.add_argument("--crop", type=positive_int, default=None, help="training crop (224/227)")
    g.add_argument("--jpeg-quality", type=int_in(0, 100), default=None,
                   help="re-encode the resized images as JPEG (prepare_data.m imwrite: 75); "
                        "0 = no")
    g.add_argument("--holdout", default="auto", choices=["auto", "matconvnet", "none"],
                   help="the authors' ~10%% held-out set (Market: prepare_data.m, CUHK03: "
                        "prepare_imdb.m; auto: MatConvNet recipe only)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the held-out draw")
    g.add_argument("--cuhk03-split", type=int_in(1, 20), default=6,
                   help="CUHK03 test split (testsets{6} as prepare_imdb.m)")
    g.add_argument("--dividor-rule", default="paper", choices=["paper", "v1.0", "released"],
                   help="pair ratio 1:(d-1). paper: d=min(5,2*1.01^epoch), also the script's "
                        "later commits and HEAD; v1.0 (alias released): max(5, ...) of the "
                        "first release (4b7d7d8), probably what trained the March 2017 model")
    g.add_argument("--backbone-lr-mult", type=_pair_floats, default=(0.001, 0.02),
                   help="backbone learningRate of odd,even parameter indices "
                        "(resnet52_market.m: 0.001,0.02)")
    g.add_argument("--fc751-lr-mult", type=_pair_floats, default=(0.01, 0.2),
                   help="fc751 filter,bias learningRate (train_id_net_res_2stream.m)")
    g.add_argument("--fc9-lr-mult", type=_pair_floats, default=(0.01, 0.2),
                   help="fc9 filter,bias learningRate (initParams.m: 0.01,0.2; stock "
                        "MatConvNet: 1,1)")
    p.add_argument("--seed", type=int, default=0, help="seed of pairs, crops, flips, init")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--resume", default="auto",
                   help="auto (the last net-epoch-N checkpoint in --out, as cnn_train_dag), "
                        "none, or a checkpoint path")
    p.add_argument("--eval-every", type=nonnegative_int, default=0,
                   help="evaluate retrieval every K epochs (always at the end)")
    p.add_argument("--eval-split", default="auto", choices=["auto", "test", "heldout", "none"],
                   help="what the evaluation ranks (auto: the test split when present)")
    p.add_argument("--workers", type=nonnegative_int, default=0,
                   help="threads to resize images, DataLoader workers for evaluation")
    p.add_argument("--cache-dir", default=None, help="keep the resized images here (.npy)")
    p.add_argument("--keep-last", type=nonnegative_int, default=0,
                   help="keep only the last K checkpoints (0: all, as MatConvNet)")
    p.add_argument("--checkpoint-format", choices=["pth", "safetensors"], default="pth",
                   help="net-epoch-N.pth (torch.save) or net-epoch-N.safetensors (tensors + "
                        "JSON metadata: no pickle, readable from any framework)")
    p.add_argument("--log-pairs", action="store_true",
                   help="write every batch's pairs and augmentation draws (pairs.*.jsonl)")
    p.add_argument("--detect-anomaly", action="store_true",
                   help="run backward under torch.autograd's anomaly detection: a NaN stops "
                   "the run at the operation that made it, named (slow; without it a NaN or "
                   "infinite loss still stops the run, exit 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or epoch lines")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="validate's full report after every evaluation (default: the epoch "
                   "line carries rank-1 and mAP; the full report comes after the last epoch)")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    try:
        kw = json.loads(args.trunk_kwargs) if args.trunk_kwargs else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"--trunk-kwargs is not JSON: {exc}") from None
    if not isinstance(kw, dict):
        raise ValueError("--trunk-kwargs must be a JSON object")
    if args.width is not None:
        kw["width"] = args.width
    return TrainConfig(
        data_root=args.data_root, out=args.out, dataset=args.dataset, arch=args.arch,
        recipe=args.recipe, init=args.init, trunk_kwargs=kw, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, iter_size=args.iter_size, base_lr=args.base_lr,
        stepsize=args.stepsize, max_iter=args.max_iter, dropout=args.dropout,
        image_size=args.image_size, crop=args.crop, jpeg_quality=args.jpeg_quality,
        holdout=args.holdout, split_seed=args.split_seed, cuhk03_split=args.cuhk03_split,
        dividor_rule=args.dividor_rule,
        backbone_lr=tuple(args.backbone_lr_mult), fc751_lr=tuple(args.fc751_lr_mult),
        fc9_lr=tuple(args.fc9_lr_mult), seed=args.seed, device=args.device,
        resume=args.resume, eval_every=args.eval_every, eval_split=args.eval_split,
        workers=args.workers, cache_dir=args.cache_dir, keep_last=args.keep_last,
        checkpoint_format=args.checkpoint_format,
        log_pairs=args.log_pairs, quiet=args.quiet, verbose=args.verbose, losses=args.losses,
        verification=args.verification, contrastive_margin=args.contrastive_margin)


def _check_outside(args: argparse.Namespace) -> None:
    """What the outside world must give before anything is built: the data, a writable
    output folder, the device."""
    if args.dataset == "cuhk03":
        require_file(args.data_root, "data_root")
    else:
        require_dir(args.data_root, "data_root")
    check_output_dir(args.out, "-o")
    check_output_dir(args.cache_dir, "--cache-dir")
    args.device = resolve_device(args.device)


_PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def _anomaly_mode(on: bool) -> Iterator[Callable[[], str]]:
    """``torch.autograd``'s anomaly detection when ``on``. Its report of the forward call
    (a warning holding a whole stack) is kept, not printed: the yielded function names the
    innermost frame of this project in it (``file:line (function)``)."""
    if not on:
        yield lambda: "?"
        return
    with warnings.catch_warnings(record=True) as caught, \
            torch.autograd.set_detect_anomaly(True, check_nan=True):
        warnings.simplefilter("always")

        def site() -> str:
            for w in reversed(caught):
                text = str(w.message)
                if text.startswith("Error detected in"):
                    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text)
                    ours = [f for f in frames if "site-packages" not in f[0]
                            and not f[0].startswith("<")]
                    if ours:
                        path, line, fn = ours[-1]
                        return f"{os.path.relpath(path, _PROJECT)}:{line} ({fn})"
            return "?"

        try:
            yield site
        finally:
            for w in caught:  # the run's other warnings, as they would have been shown
                if not str(w.message).startswith("Error detected in"):
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_outside(args)
    try:
        cfg = config_from_args(args)
        with output_dir(cfg.out), _anomaly_mode(args.detect_anomaly) as forward_site:
            try:
                Trainer(cfg).fit()  # a run that fails before writing leaves no empty folder
            except RuntimeError as exc:
                if not (args.detect_anomaly and "nan values" in str(exc)):
                    raise
                # "Function 'XBackward0' returned nan values in its 0th output."
                raise DivergedError(f"{error_line(exc).rstrip('.')}; made in the forward pass "
                                    f"at {forward_site()} (--detect-anomaly)") from None
    except DivergedError as exc:  # a check failed: the README's exit 1
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        d = torch_distributed()
        if d is not None:
            d.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, also=(RuntimeError,))

