"""Market-1501 (+500k distractors) and DukeMTMC-reID: the shared folder layout."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from porting.validation.datasets.common import (
    DISTRACTOR_SIZES,
    DUKE_NAME,
    MARKET_FOLDERS,
    MARKET_NAME,
    DatasetError,
    ReIDDataset,
    ReIDSplit,
    list_reid_folder,
    matlab_sorted,
    names_excerpt,
    screen_splits,
)

# --------------------------------------------------------------------------------------------
# Market-1501 (+500k) and DukeMTMC-reID
# --------------------------------------------------------------------------------------------


def draw_distractor_subset(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Indices (ascending) of ``size`` of ``n`` byte-sorted distractor names.

    The paper (Table 6) adds 100k, 200k and 500k distractors but does not say how the smaller
    sets were drawn. The rule here: ``perm = numpy.random.default_rng(seed).permutation(n)``,
    take ``perm[:size]``, sort ascending (so the subset keeps ``dir()`` order). For one seed
    the subsets are **nested** (100k within 200k within 500k), so the gallery only grows along
    the paper's Fig. 8 curve; ``size == n`` is the whole folder, independent of the seed.
    """
    if size < 0 or size > n:
        raise DatasetError(f"cannot draw {size} distractors out of {n}")
    if size == n:
        return np.arange(n, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:size]).astype(np.int64)


def _resolve_root(root: Path, first: str, candidates: Sequence[str]) -> Path:
    if (root / first).is_dir():
        return root
    for c in candidates:
        if (root / c / first).is_dir():
            return root / c
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist")
    tried = ", ".join([str(root / first)] + [str(root / c / first) for c in candidates])
    raise DatasetError(f"missing folder: none of {tried} exists")


def _distractor_split(folder: Path, naming: str) -> tuple[ReIDSplit, list[Path]]:
    if naming == "market":
        return list_reid_folder(folder, MARKET_NAME)
    if naming != "any":
        raise ValueError(f"distractor_names must be 'market' or 'any', got {naming!r}")
    if not folder.is_dir():
        raise DatasetError(f"missing folder {folder}")
    names, ignored = [], []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_file() and entry.name.endswith(".jpg"):
                names.append(entry.name)
            else:
                ignored.append(folder / entry.name)
    names = matlab_sorted(names)
    n = len(names)
    return ReIDSplit(tuple(folder / x for x in names), np.zeros(n), np.zeros(n),
                     tuple(names)), ignored


def _load_layout(
    root: str | os.PathLike[str],
    *,
    name: str,
    pattern: re.Pattern[str],
    candidates: Sequence[str],
    parts: Sequence[str],
    check: str,
    skip_bad_images: bool,
    distractors: str | int | None = None,
    distractor_dir: str | os.PathLike[str] | None = None,
    distractor_seed: int = 0,
    distractor_names: str = "market",
) -> ReIDDataset:
    unknown = [p for p in parts if p not in MARKET_FOLDERS]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; known: {list(MARKET_FOLDERS)}")
    base = _resolve_root(Path(root), MARKET_FOLDERS[parts[0]] if parts else "query",
                         candidates)
    splits: dict[str, ReIDSplit] = {}
    ignored: list[Path] = []
    for part in parts:
        split, ign = list_reid_folder(base / MARKET_FOLDERS[part], pattern)
        splits[part] = split
        ignored += ign

    n_distractors, rule = 0, ""
    if distractors is not None:
        if "gallery" not in splits:
            raise ValueError("distractors are added to the gallery: include 'gallery' in parts")
        if distractor_dir is None:
            found = [base / d for d in ("images", "distractors_500k") if (base / d).is_dir()]
            if not found:
                raise DatasetError(
                    f"missing distractor folder: neither {base / 'images'} nor "
                    f"{base / 'distractors_500k'} exists (extract distractors_500k.zip under "
                    f"{base} or pass distractor_dir)")
            ddir = found[0]
        else:
            ddir = Path(distractor_dir)
        dsplit, ign = _distractor_split(ddir, distractor_names)
        ignored += ign
        if isinstance(distractors, str):
            if distractors == "all":
                size = len(dsplit)
            elif distractors in DISTRACTOR_SIZES:
                size = DISTRACTOR_SIZES[distractors]
            else:
                raise ValueError(f"distractors must be one of {list(DISTRACTOR_SIZES)}, 'all' "
                                 f"or a count, got {distractors!r}")
        else:
            size = int(distractors)
        if size > len(dsplit):
            raise DatasetError(f"{ddir}: {size} distractors asked for, the folder has "
                               f"{len(dsplit)} images")
        dsplit = dsplit.subset(draw_distractor_subset(len(dsplit), size, distractor_seed))
        known = {int(p) for s in splits.values() for p in s.pids if p > 0}
        clash = [n for n, p in zip(dsplit.names, dsplit.pids, strict=True) if int(p) in known]
        if clash:
            raise DatasetError(
                f"{ddir}: {len(clash)} distractor(s) carry an identity of the dataset itself "
                f"({names_excerpt(clash)}), so they would count as true matches; pass "
                "distractor_names='any' to label every distractor as id 0")
        splits["gallery"] = ReIDSplit.concat(splits["gallery"], dsplit)
        n_distractors = len(dsplit)
        rule = (f"{size} of {ddir} ({distractor_names} names): byte-sorted names, "
                f"numpy.random.default_rng({distractor_seed}).permutation(n)[:{size}], "
                "re-sorted, appended after bounding_box_test")

    splits, skipped = screen_splits(splits, check, skip_bad_images, str(base))
    if n_distractors and skipped:
        n_distractors = sum(1 for p in splits["gallery"].paths[-n_distractors:]
                            if p.parent == Path(ddir))
    return ReIDDataset(
        query=splits.get("query"),
        gallery=splits.get("gallery"),
        train=splits.get("train"),
        gt_bbox=splits.get("gt_bbox"),
        name=name,
        root=base,
        n_distractors=n_distractors,
        skipped=skipped,
        ignored=tuple(ignored),
        distractor_rule=rule,
    )


def load_market1501(
    root: str | os.PathLike[str],
    *,
    parts: Sequence[str] = ("query", "gallery", "train", "gt_bbox"),
    distractors: str | int | None = None,
    distractor_dir: str | os.PathLike[str] | None = None,
    distractor_seed: int = 0,
    distractor_names: str = "market",
    check_images: str = "header",
    skip_bad_images: bool = False,
) -> ReIDDataset:
    """Market-1501 (``root`` or ``root/Market-1501-v15.09.15``), optionally +500k.

    ``parts``: which of query / gallery (``bounding_box_test``) / train
    (``bounding_box_train``) / gt_bbox to list; each must exist. ``distractors``: ``"100k"``,
    ``"200k"``, ``"500k"``, ``"all"`` or a count, drawn from ``distractor_dir`` (default
    ``<root>/images`` as torchreid extracts ``distractors_500k.zip``, else
    ``<root>/distractors_500k``) by :func:`draw_distractor_subset` with ``distractor_seed``
    and appended after the gallery. Distractor names must follow the Market pattern
    (``distractor_names="market"``, parsed like the gallery; none may carry an identity of the
    dataset) or, with ``"any"``, may be any ``*.jpg`` and are all labelled id 0, camera 0.
    ``check_images``: see :func:`check_images`.
    """
    return _load_layout(
        root, name="market1501" if distractors is None else f"market1501+{distractors}",
        pattern=MARKET_NAME,
        candidates=("Market-1501-v15.09.15", "Market-1501", "market1501"),
        parts=parts, check=check_images, skip_bad_images=skip_bad_images,
        distractors=distractors, distractor_dir=distractor_dir,
        distractor_seed=distractor_seed, distractor_names=distractor_names,
    )


def load_dukemtmc(
    root: str | os.PathLike[str],
    *,
    parts: Sequence[str] = ("query", "gallery", "train"),
    check_images: str = "header",
    skip_bad_images: bool = False,
) -> ReIDDataset:
    """DukeMTMC-reID (``root`` or ``root/DukeMTMC-reID``): names ``PPPP_cC_fFFFFFFF.jpg``,
    labelled by the same rule as Market-1501 (camera = ``name(7)``). The release has no
    ``gt_bbox``; ask for it in ``parts`` only if you have one."""
    return _load_layout(
        root, name="dukemtmc-reid", pattern=DUKE_NAME,
        candidates=("DukeMTMC-reID", "dukemtmc-reid", "dukemtmcreid"),
        parts=parts, check=check_images, skip_bad_images=skip_bad_images,
    )


