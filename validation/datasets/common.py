"""What every dataset loader shares: naming patterns, splits, MATLAB ``dir()`` order, the
folder listing and the image checks."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from porting.preprocess import image_problem


class DatasetError(ValueError):
    """A dataset that is not laid out, named or readable as expected; the message names it."""


#: ``PPPP_cCsS_FFFFFF_BB.jpg`` (PPPP four digits, or -1 for junk).
MARKET_NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
#: ``PPPP_cC_fFFFFFFF.jpg``.
DUKE_NAME = re.compile(r"^(-1|\d{4})_c(\d)_f(\d{7})\.jpg$")
#: torchreid's export of ``cuhk-03.mat``: ``{campair}_{id:03d}_{view}_{image:02d}.png``.
CUHK03_NP_NAME = re.compile(r"^(\d)_(\d{3})_([12])_(\d{2})\.png$")

_PATTERN_TEXT = {
    MARKET_NAME.pattern: "PPPP_cCsS_FFFFFF_BB.jpg (PPPP = 4 digits or -1)",
    DUKE_NAME.pattern: "PPPP_cC_fFFFFFFF.jpg (PPPP = 4 digits or -1)",
}

#: Part name -> folder of the Market-1501 / DukeMTMC-reID layout.
MARKET_FOLDERS = {
    "query": "query",
    "gallery": "bounding_box_test",
    "train": "bounding_box_train",
    "gt_bbox": "gt_bbox",
}

#: Gallery additions of the paper's Table 6.
DISTRACTOR_SIZES = {"100k": 100_000, "200k": 200_000, "500k": 500_000}

#: ``prepare_test.m`` / ``prepare_imdb.m``: ``testsets_num = 6`` (1-based), see SOURCES 2.6.
CUHK03_DEFAULT_SPLIT = 6

# Suffixes that are images: such a file must follow the naming pattern (it is an error,
# not skipped). Anything else (Thumbs.db, .DS_Store...) is ignored, as MATLAB's
# dir('*.jpg') ignores it, and reported in ``ignored``.
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}
_SHOW = 5  # names quoted in an error message


def names_excerpt(items: Sequence[Any]) -> str:
    head = ", ".join(str(x) for x in items[:_SHOW])
    more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return head + more


# --------------------------------------------------------------------------------------------
# Splits and datasets
# --------------------------------------------------------------------------------------------


def int_array(values: Any, name: str) -> np.ndarray:
    arr = np.array(values, dtype=np.int64).reshape(-1)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class ReIDSplit:
    """One list of images with identity and camera labels, in evaluation order.

    ``paths`` are the image files, ``names`` their file names, ``pids`` the identity (-1 =
    junk, 0 = distractor in Market-1501), ``camids`` the 1-based camera.
    """

    paths: tuple[Path, ...]
    pids: np.ndarray
    camids: np.ndarray
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(Path(p) for p in self.paths))
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "pids", int_array(self.pids, "pids"))
        object.__setattr__(self, "camids", int_array(self.camids, "camids"))
        n = len(self.paths)
        if not (len(self.names) == len(self.pids) == len(self.camids) == n):
            raise ValueError(
                f"ReIDSplit: {n} paths, {len(self.names)} names, {len(self.pids)} pids and "
                f"{len(self.camids)} camids differ in length"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: Sequence[int] | np.ndarray) -> ReIDSplit:
        """The entries at ``index`` (in that order)."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        return ReIDSplit(
            tuple(self.paths[i] for i in idx),
            self.pids[idx],
            self.camids[idx],
            tuple(self.names[i] for i in idx),
        )

    def without(self, paths: Iterable[Path]) -> ReIDSplit:
        """The split minus the given files (order kept)."""
        drop = {Path(p) for p in paths}
        return self.subset([i for i, p in enumerate(self.paths) if p not in drop])

    @staticmethod
    def concat(*splits: ReIDSplit) -> ReIDSplit:
        return ReIDSplit(
            tuple(p for s in splits for p in s.paths),
            np.concatenate([s.pids for s in splits]) if splits else [],
            np.concatenate([s.camids for s in splits]) if splits else [],
            tuple(n for s in splits for n in s.names),
        )


@dataclass(frozen=True, eq=False)
class ReIDDataset:
    """Query / gallery / train / gt_bbox lists of one dataset (a part not loaded is None).

    ``n_distractors``: the last ``n_distractors`` gallery entries are +500k distractors.
    ``skipped``: unreadable images left out (``skip_bad_images=True``). ``ignored``: files
    that are not images (``Thumbs.db``...) found in the folders, ignored as MATLAB's
    ``dir('*.jpg')`` ignores them. ``distractor_rule``: how the distractors were drawn.
    """

    query: ReIDSplit | None
    gallery: ReIDSplit | None
    train: ReIDSplit | None
    gt_bbox: ReIDSplit | None
    name: str
    root: Path
    n_distractors: int = 0
    skipped: tuple[Path, ...] = ()
    ignored: tuple[Path, ...] = ()
    distractor_rule: str = ""


def matlab_sorted(names: Iterable[str]) -> list[str]:
    """Names in the order MATLAB's ``dir()`` lists them on Linux: by raw bytes (ASCII)."""
    return sorted(names, key=os.fsencode)


def parse_reid_name(name: str, pattern: re.Pattern[str] = MARKET_NAME,
                    where: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """``(pid, camid)`` of a Market-1501/DukeMTMC file name, as the official script does.

    ``zzd_evaluation_res_faster.m``: a ``'-'`` first character gives id -1 and camera
    ``name(5)``; otherwise id ``str2num(name(1:4))`` and camera ``name(7)``. The name must also
    match ``pattern``; a name that does not raises :class:`DatasetError` naming it.
    """
    if pattern.match(name) is None:
        place = f"{os.fspath(where)}/" if where is not None else ""
        expected = _PATTERN_TEXT.get(pattern.pattern, pattern.pattern)
        raise DatasetError(f"unexpected file name {place}{name}: expected {expected}")
    if name[0] == "-":
        return -1, int(name[4])
    return int(name[0:4]), int(name[6])


def list_reid_folder(
    folder: str | os.PathLike[str], pattern: re.Pattern[str] = MARKET_NAME
) -> tuple[ReIDSplit, list[Path]]:
    """All images of one folder in MATLAB ``dir()`` order, labelled; plus ignored non-images.

    Images are the ``*.jpg`` files (the official scripts list ``dir([path '*.jpg'])``); an
    image-like file whose name breaks ``pattern`` (``.JPG``, ``.png``, a wrong id width...) is
    an error naming it. Sub-folders and other files are returned as ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"missing folder {folder}")
    images, ignored, bad = [], [], []
    with os.scandir(folder) as it:
        for entry in it:
            name = entry.name
            suffix = os.path.splitext(name)[1].lower()
            if not entry.is_file() or suffix not in _IMAGE_SUFFIXES:
                ignored.append(folder / name)
            elif pattern.match(name) is None:
                bad.append(name)
            else:
                images.append(name)
    if bad:
        expected = _PATTERN_TEXT.get(pattern.pattern, pattern.pattern)
        bad = matlab_sorted(bad)
        raise DatasetError(
            f"{folder}: {len(bad)} unexpected file name(s): {names_excerpt(bad)}; "
            f"expected {expected}"
        )
    names = matlab_sorted(images)
    labels = [parse_reid_name(n, pattern, folder) for n in names]
    split = ReIDSplit(
        tuple(folder / n for n in names),
        [p for p, _ in labels],
        [c for _, c in labels],
        tuple(names),
    )
    return split, sorted(ignored, key=lambda p: os.fsencode(p.name))


# --------------------------------------------------------------------------------------------
# Image checks
# --------------------------------------------------------------------------------------------


def _check_one(path: Path, mode: str) -> str | None:
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as im:
            problem = image_problem(im)  # refused by name (porting.preprocess.IMAGE_POLICY)
            if problem:
                return problem
            if mode == "decode":
                im.convert("RGB").load()
    except FileNotFoundError:
        return "no such file"
    except Exception as exc:  # PIL raises many types for foreign or broken files
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return None


def check_images(paths: Sequence[str | os.PathLike[str]], mode: str = "header",
                 workers: int = 8) -> list[tuple[Path, str]]:
    """``(path, reason)`` of every unreadable image among ``paths`` (in their order).

    ``mode``: ``"header"`` opens each file with Pillow (a missing, empty, non-image or
    foreign file fails; a JPEG truncated after its header passes), ``"decode"`` decodes
    every pixel (slow), ``"none"`` checks nothing. A decode error met later, during feature
    extraction, still raises :class:`DatasetError` naming the file.
    """
    if mode not in ("header", "decode", "none"):
        raise ValueError(f"check_images mode must be 'header', 'decode' or 'none', got {mode!r}")
    if mode == "none" or not paths:
        return []
    ps = [Path(p) for p in paths]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ps)))) as pool:
        reasons = list(pool.map(lambda p: _check_one(p, mode), ps, chunksize=64))
    return [(p, r) for p, r in zip(ps, reasons, strict=True) if r is not None]


def bad_images_error(bad: list[tuple[Path, str]], where: str) -> DatasetError:
    first = "; ".join(f"{p} ({r})" for p, r in bad[:_SHOW])
    more = f"; and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
    return DatasetError(
        f"{where}: {len(bad)} unreadable image(s): {first}{more}. Fix or remove them, or pass "
        "skip_bad_images=True (--skip-bad-images) to leave them out (they are then listed in "
        "the result's 'skipped')"
    )


def screen_splits(splits: dict[str, ReIDSplit], mode: str, skip: bool, where: str
            ) -> tuple[dict[str, ReIDSplit], tuple[Path, ...]]:
    allpaths = [p for s in splits.values() for p in s.paths]
    bad = check_images(allpaths, mode)
    if not bad:
        return splits, ()
    if not skip:
        raise bad_images_error(bad, where)
    drop = [p for p, _ in bad]
    return {k: s.without(drop) for k, s in splits.items()}, tuple(drop)


