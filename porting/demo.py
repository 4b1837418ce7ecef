"""``make demo``: the whole path on bundled data.

Converts the bundled MatConvNet two-stream net (the paper's ``net-epoch-N.mat`` layout, narrow
widths) and a Caffe ResNet-50 (Kaiming He's deploy layout, narrow), compares each with its
framework's own outputs, var by var, builds a mini Market-1501 from the 13 real sample images
plus generated ones, and validates both checkpoints with the authors' extraction and the
official evaluation. The bundled weights are random (the released ones are not shipped), so
the scores are far below the paper: the demo shows the pipeline, not the published numbers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def _step(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def main(argv: list[str] | None = None) -> int:
    from porting.boundary import run_cli

    return run_cli(_main, argv)


def _main(argv: list[str] | None = None) -> int:
    from porting.boundary import check_output_dir, require_dir

    p = argparse.ArgumentParser(prog="python -m porting.demo", description=__doc__)
    p.add_argument("--fixtures", default="tests/fixtures", help="the bundled models and dumps")
    p.add_argument("--out", default="demo_out", help="where the demo writes its files")
    args = p.parse_args(argv)
    fx, out = require_dir(args.fixtures, "--fixtures"), Path(args.out)
    check_output_dir(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    from porting.converters.caffe import main as convert_caffe
    from porting.converters.compare import main as compare
    from porting.converters.matconvnet import main as convert_matconvnet
    from porting.preprocess import caffe_dxy, market_matconvnet
    from porting.validation.cli import main as validate
    from porting.validation.mini import make_mini_market

    _step("preprocessing the real Market-1501 samples as the authors did")
    from porting.validation import mini

    sample_dir = Path(mini.__file__).resolve().parent / "data" / "market1501_samples"
    images = sorted(sample_dir.glob("*.jpg"))
    mcn, caffe = market_matconvnet(), caffe_dxy(224)
    x_mcn, x_caffe = mcn(images[0]), caffe(images[0])
    print(f"{len(images)} real crops, e.g. {images[0].name}")
    print(f"  MatConvNet recipe: MATLAB imresize bicubic (uint8) -> {tuple(x_mcn.shape)}, RGB "
          f"minus {np.round(mcn.mean, 2).tolist()}")
    print(f"  Caffe (D-X-Y) recipe: caffe.io resize 256 -> centre crop -> {tuple(x_caffe.shape)},"
          f" BGR minus {np.round(caffe.mean, 2).tolist()}")

    _step("convert-matconvnet: the paper's two-stream net (net-epoch-N.mat layout)")
    two = out / "two_stream.pth"
    rc = convert_matconvnet([str(fx / "matconvnet/resnet52_2stream_narrow/model.mat"),
                             "-o", str(two)])
    if rc:
        return rc

    _step("compare: the converted net against MatConvNet's own outputs (256x256 input)")
    rc = compare([str(two), str(fx / "models/mcn_2stream_256.npz")])
    if rc:
        return rc

    _step("convert-caffe: Kaiming He's ResNet-50 deploy net (real Caffe fixture)")
    res = out / "caffe_resnet50.pth"
    rc = convert_caffe([str(fx / "caffe/resnet50_narrow/deploy.prototxt"),
                        str(fx / "caffe/resnet50_narrow/weights.caffemodel"), "-o", str(res)])
    if rc:
        return rc

    _step("compare: the converted Caffe net against Caffe's own blobs (224x224 input)")
    rc = compare([str(res), str(fx / "models/caffe_resnet50.npz")])
    if rc:
        return rc

    _step("a mini Market-1501: 13 real crops + generated images, official layout")
    root = out / "market_mini"
    if root.exists():
        shutil.rmtree(root)
    make_mini_market(root)  # as `reid-porting make-mini-market DIR`
    for part in ("query", "bounding_box_test", "bounding_box_train", "gt_bbox"):
        print(f"  {part}: {len(list((root / part).glob('*.jpg')))} images")

    _step("validate: MatConvNet checkpoint, authors' 256 + flip + per-position L2 recipe")
    rc = validate(["--root", str(root), "--checkpoint", str(two), "--multi-query",
                   "--json", str(out / "two_stream.json"), "--plot", str(out / "cmc.png"),
                   "--visrank", "8", "--visrank-queries", "4", "--visrank-order", "worst",
                   "--visrank-dir", str(out / "ranked"), "-q", "--workers", "0"])
    if rc:
        return rc

    _step("validate: Caffe checkpoint, D-X-Y's extraction (BGR, 256 resize, centre crop)")
    rc = validate(["--root", str(root), "--checkpoint", str(res), "--json",
                   str(out / "caffe_resnet50.json"), "-q", "--workers", "0"])
    if rc:
        return rc
    print(f"\nDone in {time.perf_counter() - t0:.1f} s; files in {out}/ "
          "(checkpoints, JSON reports, CMC plot, ranked lists). The bundled weights are random "
          "narrow nets, so the published figures are not expected to be met here.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
