"""The paper's test datasets, listed exactly as the authors' evaluation code sees them.

* **Market-1501** and **DukeMTMC-reID** (same layout: ``query``, ``bounding_box_test``,
  ``bounding_box_train``, ``gt_bbox``): :func:`load_market1501`, :func:`load_dukemtmc`.
  Files are listed in the order MATLAB's ``dir()`` gives (byte-sorted names), because the
  official evaluation breaks distance ties by gallery position. Identities and cameras are
  parsed as ``zzd_evaluation_res_faster.m`` does (a ``'-'`` prefix gives id -1 and camera
  ``name(5)``, otherwise id ``name(1:4)`` and camera ``name(7)``) and every name is also
  checked against the dataset's naming pattern, so a stray file is an error, not a silent
  mis-label.
* **Market-1501+500k**: ``load_market1501(..., distractors="100k"|"200k"|"500k")`` appends a
  seeded subset of the distractor folder to the gallery (rule in
  :func:`draw_distractor_subset`).
* **CUHK03**, old protocol (the paper's): :func:`load_cuhk03` reads ``cuhk-03.mat`` (MATLAB
  v7.3 = HDF5) lazily and gives one test split's camera-A / camera-B images and labels in
  ``prepare_test.m`` order; :func:`load_cuhk03_train` the training identities as
  ``prepare_imdb.m`` numbers them. New 767/700 protocol: :func:`load_cuhk03_np`.
* **Oxford5k**: :func:`load_oxford5k` (``gt_files_170407`` ground truth, query boxes).

Every problem (a missing folder or file, an unexpected file name, an unreadable image) raises
:class:`DatasetError` naming it. Unreadable images are collected first, so the error gives
their count and the first names; ``skip_bad_images=True`` leaves them out instead and lists
them in the result's ``skipped`` (never a silent drop).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "DatasetError",
    "ReIDSplit",
    "ReIDDataset",
    "MARKET_NAME",
    "DUKE_NAME",
    "CUHK03_NP_NAME",
    "MARKET_FOLDERS",
    "DISTRACTOR_SIZES",
    "CUHK03_DEFAULT_SPLIT",
    "matlab_sorted",
    "parse_reid_name",
    "list_reid_folder",
    "check_images",
    "draw_distractor_subset",
    "load_market1501",
    "load_dukemtmc",
    "CUHK03Images",
    "CUHK03Split",
    "load_cuhk03",
    "load_cuhk03_train",
    "load_cuhk03_np",
    "OxfordQuery",
    "Oxford5k",
    "load_oxford5k",
]


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


def _names_excerpt(items: Sequence[Any]) -> str:
    head = ", ".join(str(x) for x in items[:_SHOW])
    more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return head + more


# --------------------------------------------------------------------------------------------
# Splits and datasets
# --------------------------------------------------------------------------------------------


def _int_array(values: Any, name: str) -> np.ndarray:
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
        object.__setattr__(self, "pids", _int_array(self.pids, "pids"))
        object.__setattr__(self, "camids", _int_array(self.camids, "camids"))
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
            f"{folder}: {len(bad)} unexpected file name(s): {_names_excerpt(bad)}; "
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
            if mode == "decode":
                im.convert("RGB").load()
            elif im.width < 1 or im.height < 1:
                return f"image size {im.width}x{im.height}"
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


_check_images = check_images  # loaders take a `check_images` argument that shadows it


def _bad_images_error(bad: list[tuple[Path, str]], where: str) -> DatasetError:
    first = "; ".join(f"{p} ({r})" for p, r in bad[:_SHOW])
    more = f"; and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
    return DatasetError(
        f"{where}: {len(bad)} unreadable image(s): {first}{more}. Fix or remove them, or pass "
        "skip_bad_images=True (--skip-bad-images) to leave them out (they are then listed in "
        "the result's 'skipped')"
    )


def _screen(splits: dict[str, ReIDSplit], mode: str, skip: bool, where: str
            ) -> tuple[dict[str, ReIDSplit], tuple[Path, ...]]:
    allpaths = [p for s in splits.values() for p in s.paths]
    bad = _check_images(allpaths, mode)
    if not bad:
        return splits, ()
    if not skip:
        raise _bad_images_error(bad, where)
    drop = [p for p, _ in bad]
    return {k: s.without(drop) for k, s in splits.items()}, tuple(drop)


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
                f"({_names_excerpt(clash)}), so they would count as true matches; pass "
                "distractor_names='any' to label every distractor as id 0")
        splits["gallery"] = ReIDSplit.concat(splits["gallery"], dsplit)
        n_distractors = len(dsplit)
        rule = (f"{size} of {ddir} ({distractor_names} names): byte-sorted names, "
                f"numpy.random.default_rng({distractor_seed}).permutation(n)[:{size}], "
                "re-sorted, appended after bounding_box_test")

    splits, skipped = _screen(splits, check, skip_bad_images, str(base))
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


# --------------------------------------------------------------------------------------------
# CUHK03, old protocol, from cuhk-03.mat (MATLAB v7.3 = HDF5)
# --------------------------------------------------------------------------------------------


def _h5py():
    import h5py

    return h5py


def _open_v73(path: Path):
    h5py = _h5py()
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    if not h5py.is_hdf5(path):
        raise DatasetError(
            f"{path}: not a MATLAB v7.3 (HDF5) MAT-file; cuhk-03.mat from cuhk03_release.zip "
            "is v7.3")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open as HDF5 ({exc})") from None


def _cell_refs(f, path: Path, name: str) -> np.ndarray:
    """A MATLAB cell variable as an array of object references in MATLAB shape."""
    h5py = _h5py()
    if name not in f:
        raise DatasetError(f"{path}: no variable {name!r} (variables: {sorted(f.keys())})")
    ds = f[name]
    if not isinstance(ds, h5py.Dataset) or ds.dtype != h5py.ref_dtype:
        raise DatasetError(f"{path}: variable {name!r} is not a cell array")
    return ds[()].T  # HDF5 stores MATLAB's dims reversed


def _deref_cell(f, ref, path: Path, where: str) -> np.ndarray:
    h5py = _h5py()
    obj = f[ref]
    if not isinstance(obj, h5py.Dataset) or obj.dtype != h5py.ref_dtype:
        raise DatasetError(f"{path}: {where} is not a cell array")
    return obj[()].T


def _is_empty(obj) -> bool:
    return bool(obj.attrs.get("MATLAB_empty", 0)) or obj.ndim != 3 or obj.size == 0


class CUHK03Images(Sequence):
    """Lazy list of CUHK03 images (uint8 HxWx3 RGB arrays) inside ``cuhk-03.mat``.

    ``keys[i] = (campair, id, image)`` 1-based MATLAB indices into ``kind{campair}{id, image}``.
    Safe to pass to DataLoader workers: the HDF5 file is (re)opened in each process.
    """

    def __init__(self, path: str | os.PathLike[str], kind: str, keys: np.ndarray) -> None:
        self.path = Path(path)
        self.kind = kind
        self.keys = np.asarray(keys, dtype=np.int64).reshape(-1, 3)
        self._state: tuple[int, Any, dict[int, np.ndarray]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_state"] = None
        return state

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def names(self) -> tuple[str, ...]:
        """``{campair}_{id:03d}_{view}_{image:02d}`` as torchreid names the exported files."""
        return tuple(f"{c}_{i:03d}_{1 if j <= 5 else 2}_{j:02d}" for c, i, j in self.keys)

    def cache_token(self) -> str:
        """Identifies the content for a feature cache: file identity + the keys."""
        st = self.path.stat()
        h = hashlib.sha256(self.keys.tobytes())
        return f"cuhk03:{self.path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{self.kind}:" \
               f"{h.hexdigest()}"

    def _file(self) -> tuple[Any, dict[int, np.ndarray]]:
        pid = os.getpid()
        if self._state is None or self._state[0] != pid:
            f = _open_v73(self.path)
            self._state = (pid, f, {})
        return self._state[1], self._state[2]

    def close(self) -> None:
        if self._state is not None and self._state[0] == os.getpid():
            self._state[1].close()
        self._state = None

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return CUHK03Images(self.path, self.kind, self.keys[index])
        campair, ident, image = (int(v) for v in self.keys[index])
        f, cells = self._file()
        if campair not in cells:
            top = _cell_refs(f, self.path, self.kind)
            cells[campair] = _deref_cell(f, top.reshape(-1)[campair - 1], self.path,
                                         f"{self.kind}{{{campair}}}")
        obj = f[cells[campair][ident - 1, image - 1]]
        where = f"{self.path}: {self.kind}{{{campair}}}{{{ident},{image}}}"
        if _is_empty(obj):
            raise DatasetError(f"{where} is empty")
        arr = obj[()]
        if arr.dtype != np.uint8 or arr.shape[0] != 3:
            raise DatasetError(f"{where}: expected a uint8 HxWx3 image, got {arr.dtype} "
                               f"{arr.shape[::-1]}")
        return np.ascontiguousarray(arr.T)


@dataclass(frozen=True, eq=False)
class CUHK03Split:
    """One old-protocol test split as ``prepare_test.m`` builds ``testdb``.

    ``camera_a`` (``data1``) holds images 1-5 of each test identity, ``camera_b``
    (``data2``) images 6-10, identity by identity in ``testsets{split}`` row order, empty cells
    skipped; ``label_a``/``label_b`` are the row numbers 1..100 (``label1``/``label2``).
    ``identities`` is ``testsets{split}``: ``[campair, id]`` per row, 1-based.
    """

    camera_a: CUHK03Images
    label_a: np.ndarray
    camera_b: CUHK03Images
    label_b: np.ndarray
    identities: np.ndarray
    split: int
    kind: str
    path: Path


def _cuhk03_kind(kind: str) -> str:
    if kind not in ("detected", "labeled"):
        raise ValueError(f"kind must be 'detected' or 'labeled', got {kind!r}")
    return kind


def _testset(f, path: Path, split: int) -> np.ndarray:
    tests = _cell_refs(f, path, "testsets").reshape(-1)
    if not 1 <= split <= len(tests):
        raise DatasetError(f"{path}: split {split} out of range 1..{len(tests)} (1-based, as "
                           "MATLAB's testsets{s})")
    obj = f[tests[split - 1]]
    rows = np.asarray(obj[()]).T
    if rows.ndim != 2 or rows.shape[1] != 2:
        raise DatasetError(f"{path}: testsets{{{split}}} is {rows.shape}, expected Nx2 "
                           "[campair, id]")
    return rows.astype(np.int64)


def _nonempty_images(f, path: Path, kind: str, cells: dict[int, np.ndarray], campair: int,
                     ident: int, images: Iterable[int]) -> list[int]:
    if campair not in cells:
        top = _cell_refs(f, path, kind).reshape(-1)
        if not 1 <= campair <= len(top):
            raise DatasetError(f"{path}: camera pair {campair} out of range 1..{len(top)}")
        cells[campair] = _deref_cell(f, top[campair - 1], path, f"{kind}{{{campair}}}")
    grid = cells[campair]
    if not 1 <= ident <= grid.shape[0]:
        raise DatasetError(f"{path}: identity {ident} out of range 1..{grid.shape[0]} in "
                           f"{kind}{{{campair}}}")
    return [j for j in images if not _is_empty(f[grid[ident - 1, j - 1]])]


def load_cuhk03(
    mat_path: str | os.PathLike[str],
    *,
    split: int = CUHK03_DEFAULT_SPLIT,
    kind: str = "detected",
) -> CUHK03Split:
    """The old protocol's test split ``split`` (1-based; default 6 as the authors'
    ``prepare_test.m``, ``testsets_num = 6``) of ``cuhk-03.mat``, images read lazily.

    The paper reports ``detected`` boxes. For each row ``(campair, id)`` of
    ``testsets{split}``, label = row number; images 1-5 of ``kind{campair}{id,:}`` go to
    camera A and 6-10 to camera B, empty cells skipped. Feed the images to the
    ``cuhk03-matconvnet`` preprocessing (it resizes the uint8 image to 256 first, as
    ``prepare_test.m`` does).
    """
    path = Path(mat_path)
    kind = _cuhk03_kind(kind)
    with _open_v73(path) as f:
        rows = _testset(f, path, split)
        cells: dict[int, np.ndarray] = {}
        keys_a, lab_a, keys_b, lab_b = [], [], [], []
        for label, (campair, ident) in enumerate(rows.tolist(), start=1):
            for j in _nonempty_images(f, path, kind, cells, campair, ident, range(1, 11)):
                (keys_a if j <= 5 else keys_b).append((campair, ident, j))
                (lab_a if j <= 5 else lab_b).append(label)
    rows.setflags(write=False)
    return CUHK03Split(
        camera_a=CUHK03Images(path, kind, np.array(keys_a, dtype=np.int64).reshape(-1, 3)),
        label_a=_int_array(lab_a, "label_a"),
        camera_b=CUHK03Images(path, kind, np.array(keys_b, dtype=np.int64).reshape(-1, 3)),
        label_b=_int_array(lab_b, "label_b"),
        identities=rows,
        split=split,
        kind=kind,
        path=path,
    )


def load_cuhk03_train(
    mat_path: str | os.PathLike[str],
    *,
    split: int = CUHK03_DEFAULT_SPLIT,
    kind: str = "detected",
) -> tuple[CUHK03Images, np.ndarray]:
    """Training images and labels as ``prepare_imdb.m`` numbers them: camera pair by camera
    pair, identity by identity, every identity not in ``testsets{split}`` gets the next label
    (1..1367 on the real file), its non-empty images 1..10 in order."""
    path = Path(mat_path)
    kind = _cuhk03_kind(kind)
    with _open_v73(path) as f:
        test = {tuple(r) for r in _testset(f, path, split).tolist()}
        top = _cell_refs(f, path, kind).reshape(-1)
        cells: dict[int, np.ndarray] = {}
        keys, labels, label = [], [], 0
        for campair in range(1, len(top) + 1):
            cells[campair] = _deref_cell(f, top[campair - 1], path, f"{kind}{{{campair}}}")
            for ident in range(1, cells[campair].shape[0] + 1):
                if (campair, ident) in test:
                    continue
                label += 1
                for j in _nonempty_images(f, path, kind, cells, campair, ident, range(1, 11)):
                    keys.append((campair, ident, j))
                    labels.append(label)
    return (CUHK03Images(path, kind, np.array(keys, dtype=np.int64).reshape(-1, 3)),
            _int_array(labels, "labels"))


# --------------------------------------------------------------------------------------------
# CUHK03, new 767/700 protocol (Zhong et al., CVPR 2017)
# --------------------------------------------------------------------------------------------


def _mat_vector(mat: dict[str, Any], key: str, path: Path) -> np.ndarray:
    if key not in mat:
        known = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path}: no field {key!r} (fields: {known})")
    return np.asarray(mat[key]).reshape(-1)


def load_cuhk03_np(
    config_mat: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    *,
    check_images: str = "header",
    skip_bad_images: bool = False,
) -> ReIDDataset:
    """The new protocol from ``cuhk03_new_protocol_config_{detected,labeled}.mat``.

    ``train_idx``/``query_idx``/``gallery_idx`` (1-based) index ``filelist`` and ``labels``;
    the lists keep the config's order. Files ``{campair}_{id:03d}_{view}_{image:02d}.png``
    live in ``images_dir`` (torchreid's ``images_detected``/``images_labeled`` export); the
    camera is the view (1 or 2), so same-view true matches count as junk. ``pids`` are the
    config's ``labels`` (not relabelled).
    """
    import scipy.io

    path, images = Path(config_mat), Path(images_dir)
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    if not images.is_dir():
        raise DatasetError(f"missing folder {images}")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:
        raise DatasetError(f"{path}: not a readable MAT-file ({exc})") from None
    labels = _mat_vector(mat, "labels", path).astype(np.int64)
    files = _mat_vector(mat, "filelist", path)
    names = [str(np.asarray(x).reshape(-1)[0]) if np.asarray(x).size else "" for x in files]
    if len(names) != len(labels):
        raise DatasetError(f"{path}: filelist has {len(names)} entries, labels {len(labels)}")
    bad = [n for n in names if CUHK03_NP_NAME.match(n) is None]
    if bad:
        raise DatasetError(f"{path}: {len(bad)} unexpected file name(s) in filelist: "
                           f"{_names_excerpt(bad)}; expected {{campair}}_{{id:03d}}_{{view}}_"
                           "{image:02d}.png")
    splits: dict[str, ReIDSplit] = {}
    for part, key in (("train", "train_idx"), ("query", "query_idx"),
                      ("gallery", "gallery_idx")):
        idx = _mat_vector(mat, key, path).astype(np.int64)
        if idx.size and (idx.min() < 1 or idx.max() > len(names)):
            raise DatasetError(f"{path}: {key} has indices outside 1..{len(names)}")
        sel = [names[i - 1] for i in idx]
        splits[part] = ReIDSplit(
            tuple(images / n for n in sel),
            labels[idx - 1],
            [int(n.split("_")[2]) for n in sel],
            tuple(sel),
        )
    missing = matlab_sorted({n for s in splits.values()
                             for n, p in zip(s.names, s.paths, strict=True) if not p.is_file()})
    if missing:
        raise DatasetError(f"{images}: {len(missing)} image(s) of {path.name} missing: "
                           f"{_names_excerpt(missing)}")
    splits, skipped = _screen(splits, check_images, skip_bad_images, str(images))
    stem = path.stem.replace("cuhk03_new_protocol_config_", "")
    return ReIDDataset(
        query=splits["query"], gallery=splits["gallery"], train=splits["train"],
        gt_bbox=None, name=f"cuhk03-np-{stem}", root=images, skipped=skipped,
    )


# --------------------------------------------------------------------------------------------
# Oxford5k
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OxfordQuery:
    """One query of ``gt_files_170407``: ``<name>_query.txt`` = ``oxc1_<image> x1 y1 x2 y2``."""

    name: str
    image: str
    box: tuple[float, float, float, float]
    good: tuple[str, ...]
    ok: tuple[str, ...]
    junk: tuple[str, ...]

    @property
    def positives(self) -> tuple[str, ...]:
        """good then ok (``compute_ap``'s positive set)."""
        return self.good + self.ok


@dataclass(frozen=True, eq=False)
class Oxford5k:
    """Database images (byte-sorted names without ``.jpg``) and the queries."""

    images: tuple[str, ...]
    paths: tuple[Path, ...]
    queries: tuple[OxfordQuery, ...]
    gt_dir: Path
    images_dir: Path
    skipped: tuple[Path, ...] = ()
    index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.index:
            object.__setattr__(self, "index", {n: i for i, n in enumerate(self.images)})

    def query_path(self, query: OxfordQuery) -> Path:
        return self.images_dir / f"{query.image}.jpg"

    def query_crop(self, query: OxfordQuery) -> np.ndarray:
        """The query region as a uint8 HxWx3 RGB array.

        Cropped as cnnimageretrieval does (``PIL.Image.crop(box)``): each coordinate is
        rounded with Python's ``round`` (half to even), the region is ``[x1, x2) x [y1, y2)``.
        """
        path = self.query_path(query)
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB").crop(query.box), dtype=np.uint8).copy()
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read image {path}: {exc}") from None


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"missing ground-truth file {path}")
    with open(path, encoding="ascii", errors="strict") as fh:
        return [s for s in (line.strip() for line in fh) if s]


def load_oxford5k(
    gt_dir: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    *,
    check_images: str = "header",
    skip_bad_images: bool = False,
) -> Oxford5k:
    """Oxford5k from ``gt_files_170407`` (``gt_dir``) and the ``.jpg`` folder.

    Queries come in byte-sorted order of their ``*_query.txt`` files (all_souls_1 ..
    radcliffe_camera_5); each must have ``_good``/``_ok``/``_junk`` files whose names (and the
    query image) exist among the images. Lines are stripped of surrounding whitespace and empty
    lines dropped. Skipped (unreadable) images leave the database; a query whose own image is
    unreadable is an error.
    """
    gt, imgs = Path(gt_dir), Path(images_dir)
    if not gt.is_dir():
        raise DatasetError(f"missing folder {gt}")
    if not imgs.is_dir():
        raise DatasetError(f"missing folder {imgs}")
    names = matlab_sorted(n[:-4] for n in os.listdir(imgs) if n.endswith(".jpg"))
    if not names:
        raise DatasetError(f"{imgs}: no .jpg images")
    known = set(names)
    qfiles = matlab_sorted(n for n in os.listdir(gt) if n.endswith("_query.txt"))
    if not qfiles:
        raise DatasetError(f"{gt}: no *_query.txt ground-truth files")
    queries = []
    for qf in qfiles:
        qname = qf[: -len("_query.txt")]
        lines = _read_lines(gt / qf)
        parts = lines[0].split() if len(lines) == 1 else []
        if len(parts) != 5 or not parts[0].startswith("oxc1_"):
            raise DatasetError(f"{gt / qf}: expected one line 'oxc1_<image> x1 y1 x2 y2'")
        try:
            box = tuple(float(v) for v in parts[1:])
        except ValueError:
            raise DatasetError(f"{gt / qf}: box {parts[1:]} is not 4 numbers") from None
        sets = {k: tuple(_read_lines(gt / f"{qname}_{k}.txt")) for k in ("good", "ok", "junk")}
        image = parts[0][len("oxc1_"):]
        missing = [n for n in (image, *sets["good"], *sets["ok"], *sets["junk"])
                   if n not in known]
        if missing:
            raise DatasetError(f"{gt / qname}: {len(missing)} image(s) named in the ground "
                               f"truth are not in {imgs}: {_names_excerpt(missing)}")
        queries.append(OxfordQuery(qname, image, box, sets["good"], sets["ok"], sets["junk"]))
    paths = [imgs / f"{n}.jpg" for n in names]
    bad = _check_images(paths, check_images)
    skipped: tuple[Path, ...] = ()
    if bad:
        qimages = {imgs / f"{q.image}.jpg" for q in queries}
        if not skip_bad_images or any(p in qimages for p, _ in bad):
            raise _bad_images_error(bad, str(imgs))
        skipped = tuple(p for p, _ in bad)
        drop = set(skipped)
        keep = [i for i, p in enumerate(paths) if p not in drop]
        names, paths = [names[i] for i in keep], [paths[i] for i in keep]
    return Oxford5k(tuple(names), tuple(paths), tuple(queries), gt, imgs, skipped)
