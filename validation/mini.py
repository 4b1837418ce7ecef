"""A small dataset in Market-1501 layout for tests and the demo.

It starts from the 13 real Market-1501 crops bundled in ``data/market1501_samples`` (the
authors' heat-map demo images, 64x128 JPEG) and adds generated images:

* ``query``: one real crop per identity (9 identities), as Market's query holds at most one
  image per identity and camera;
* ``bounding_box_test``: the 4 other real crops, augmented copies of every query identity
  in **another** camera (so every query has a true match) and some in the same camera (junk
  for the official protocol), ``0000`` distractors (smooth colour fields: no person) and
  ``-1`` junk (badly placed boxes: half a person stretched to the full crop);
* ``bounding_box_train``: identities disjoint from the test ones (colour-permuted augmented
  crops), two or more images each in different cameras;
* ``gt_bbox``: for every query identity its real crop and a jittered copy in the query's
  camera (what multi-query reads).

Augmentations: a shift of up to 4 px (edge-replicated), a per-channel colour scale in
[0.85, 1.15], a horizontal flip half of the time, Gaussian noise of sigma 3; each copy gets a
new camera, sequence and frame number. Everything is drawn from
``numpy.random.default_rng(seed)`` and JPEG-encoded by Pillow at quality 90, so the same seed
gives the same bytes.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from porting.validation.datasets import MARKET_FOLDERS, MARKET_NAME

__all__ = ["SAMPLES_PACKAGE_DIR", "sample_paths", "build_mini_market", "make_mini_market",
           "build_parser", "main"]

#: Where the 13 real crops live inside the package.
SAMPLES_PACKAGE_DIR = "data/market1501_samples"

_MIN_GENERATED = 26


def sample_paths() -> list[Path]:
    """The bundled real Market-1501 crops, byte-sorted."""
    root = importlib.resources.files("porting.validation").joinpath(SAMPLES_PACKAGE_DIR)
    paths = sorted((Path(str(p)) for p in root.iterdir() if p.name.endswith(".jpg")),
                   key=lambda p: os.fsencode(p.name))
    if len(paths) != 13:
        raise FileNotFoundError(
            f"expected the 13 bundled Market-1501 samples in {root}, found {len(paths)}; "
            "is the package data installed?")
    return paths


def _augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w, _ = img.shape
    dy, dx = (int(v) for v in rng.integers(-4, 5, size=2))
    padded = np.pad(img, ((4, 4), (4, 4), (0, 0)), mode="edge")
    out = padded[4 + dy: 4 + dy + h, 4 + dx: 4 + dx + w].astype(np.float32)
    out *= rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out += rng.normal(0.0, 3.0, size=out.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _smooth_field(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    small = rng.integers(0, 256, size=(4, 2, 3), dtype=np.uint8)
    field = Image.fromarray(small).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(field, dtype=np.uint8)


def _half_box(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w, _ = img.shape
    top = int(rng.integers(0, h // 2 + 1))
    part = Image.fromarray(img[top: top + h // 2])
    return np.asarray(part.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


class _Namer:
    """Unique Market names: PPPP_cCsS_FFFFFF_BB.jpg with fresh frame numbers."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def __call__(self, pid: int, cam: int) -> str:
        while True:
            seq = int(self.rng.integers(1, 7))
            frame = int(self.rng.integers(0, 1_000_000))
            box = int(self.rng.integers(0, 10))
            prefix = "-1" if pid == -1 else f"{pid:04d}"
            name = f"{prefix}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg"
            if name not in self.used:
                self.used.add(name)
                assert MARKET_NAME.match(name)
                return name


def build_mini_market(root: str | os.PathLike[str], n_generated: int = 40, seed: int = 0,
                      exist_ok: bool = False) -> Path:
    """Write the mini dataset under ``root`` (Market-1501 layout) and return ``root``.

    ``n_generated`` (at least 26) generated images are added to the 13 real ones: 9 query
    copies in another camera, 9 gt_bbox jitters, ``max(2, n//10)`` distractors and as many
    junk images, ``max(4, n//6)`` train images; the rest are extra gallery copies of query
    identities in random cameras. Deterministic for a given ``seed`` and ``n_generated``.
    ``exist_ok=False`` refuses to write into non-empty dataset folders.
    """
    if n_generated < _MIN_GENERATED:
        raise ValueError(f"n_generated must be at least {_MIN_GENERATED}, got {n_generated}")
    root = Path(root)
    dirs = {part: root / folder for part, folder in MARKET_FOLDERS.items()}
    for d in dirs.values():
        if d.is_dir() and any(d.iterdir()) and not exist_ok:
            raise FileExistsError(f"{d} is not empty (pass exist_ok=True to add to it)")
        d.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    namer = _Namer(rng)
    namer.used.update(p.name for p in sample_paths())
    reals = sample_paths()
    images = {p.name: np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in reals}

    def write(part: str, name: str, img: np.ndarray) -> None:
        Image.fromarray(img).save(dirs[part] / name, format="JPEG", quality=90)

    # queries: the first real crop of each identity; the other real crops go to the gallery
    query: dict[int, tuple[str, int]] = {}
    for p in reals:
        pid, cam = int(p.name[0:4]), int(p.name[6])
        if pid not in query:
            query[pid] = (p.name, cam)
            shutil.copyfile(p, dirs["query"] / p.name)
            shutil.copyfile(p, dirs["gt_bbox"] / p.name)
        else:
            shutil.copyfile(p, dirs["gallery"] / p.name)
    qids = sorted(query)

    n_distractors = n_junk = max(2, n_generated // 10)
    n_train = max(4, n_generated // 6)
    n_extra = n_generated - 2 * len(qids) - n_distractors - n_junk - n_train
    assert n_extra >= 0, "the minimum n_generated covers the fixed allocation"

    for pid in qids:
        name, cam = query[pid]
        other = int(rng.choice([c for c in range(1, 7) if c != cam]))
        write("gallery", namer(pid, other), _augment(images[name], rng))
        write("gt_bbox", namer(pid, cam), _augment(images[name], rng))
    for _ in range(n_extra):
        pid = int(rng.choice(qids))
        write("gallery", namer(pid, int(rng.integers(1, 7))),
              _augment(images[query[pid][0]], rng))
    shape = next(iter(images.values())).shape[:2]
    for _ in range(n_distractors):
        write("gallery", namer(0, int(rng.integers(1, 7))), _smooth_field(rng, shape))
    for _ in range(n_junk):
        src = images[reals[int(rng.integers(0, len(reals)))].name]
        write("gallery", namer(-1, int(rng.integers(1, 7))), _half_box(src, rng))

    # train identities: new ids (not test ids), a colour permutation of one real crop each
    train_ids = [i for i in range(2, 1502, 7) if i not in query][: max(2, n_train // 2)]
    perms = [(1, 2, 0), (2, 0, 1), (2, 1, 0), (1, 0, 2), (0, 2, 1)]
    for k in range(n_train):
        tid = train_ids[k % len(train_ids)]
        slot = train_ids.index(tid)
        src = images[reals[slot % len(reals)].name][:, :, list(perms[slot % len(perms)])]
        cam = 1 + (k // len(train_ids) + slot) % 6  # cameras differ between an id's images
        write("train", namer(tid, cam), _augment(np.ascontiguousarray(src), rng))
    return root


def make_mini_market(root: str | os.PathLike[str], n_generated: int = 40, seed: int = 0
                     ) -> Path:
    """:func:`build_mini_market` into a NEW folder ``root``, all or nothing: the set is built
    in a hidden folder next to it and renamed onto ``root`` once complete (removed if the
    build fails or is interrupted). An existing ``root`` must be an empty folder."""
    root = Path(root)
    if root.exists() and not (root.is_dir() and not any(root.iterdir())):
        kind = "a folder that is not empty" if root.is_dir() else "not a folder"
        raise FileExistsError(f"{root}: {kind}; give a new folder name")
    if n_generated < _MIN_GENERATED:
        raise ValueError(f"--generated must be at least {_MIN_GENERATED}, got {n_generated}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.{secrets.token_hex(4)}.tmp"
    os.mkdir(tmp)  # the umask applies, as to any folder the user makes
    try:
        build_mini_market(tmp, n_generated=n_generated, seed=seed, exist_ok=True)
        os.replace(tmp, root)  # onto a missing or empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def build_parser() -> argparse.ArgumentParser:
    from porting.cli import HelpFormatter, examples_epilog

    p = argparse.ArgumentParser(
        prog="reid-porting make-mini-market", epilog=examples_epilog("make-mini-market"),
        description="Write a small dataset in Market-1501 layout (query, bounding_box_test, "
        "bounding_box_train, gt_bbox): the 13 real Market-1501 crops bundled with the package "
        "plus generated images (augmented copies in other cameras, same-camera junk, 0000 "
        "distractors, -1 junk boxes, disjoint training identities). The demo, the tests and "
        "the benchmarks use it; the same seed gives the same bytes.",
        formatter_class=HelpFormatter)
    p.add_argument("dir", help="the new dataset folder (must not exist, or be empty)")
    p.add_argument("--generated", type=int, default=40, metavar="N",
                   help=f"generated images added to the 13 real ones (at least "
                   f"{_MIN_GENERATED}; default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def _main(argv: list[str] | None = None) -> int:
    from porting.boundary import check_output_dir

    args = build_parser().parse_args(argv)
    check_output_dir(args.dir)
    root = make_mini_market(args.dir, args.generated, args.seed)
    if not args.quiet:
        counts = {name: sum(1 for _ in (root / folder).glob("*.jpg"))
                  for name, folder in MARKET_FOLDERS.items()}
        print(f"{root}: " + ", ".join(f"{n} {folder}" for folder, n in counts.items())
              + " images (Market-1501 layout)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``reid-porting make-mini-market DIR``: exit 0, or 2 with one line."""
    from porting.boundary import run_cli

    return run_cli(_main, None if argv is None else list(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
