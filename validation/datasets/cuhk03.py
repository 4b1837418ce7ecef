"""CUHK03 from ``cuhk-03.mat`` (MATLAB v7.3 = HDF5): the paper's old protocol and the new
767/700 protocol."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from porting.validation.datasets.common import (
    CUHK03_DEFAULT_SPLIT,
    CUHK03_NP_NAME,
    DatasetError,
    ReIDDataset,
    ReIDSplit,
    int_array,
    matlab_sorted,
    names_excerpt,
    screen_splits,
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
        label_a=int_array(lab_a, "label_a"),
        camera_b=CUHK03Images(path, kind, np.array(keys_b, dtype=np.int64).reshape(-1, 3)),
        label_b=int_array(lab_b, "label_b"),
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
            int_array(labels, "labels"))


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
                           f"{names_excerpt(bad)}; expected {{campair}}_{{id:03d}}_{{view}}_"
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
                           f"{names_excerpt(missing)}")
    splits, skipped = screen_splits(splits, check_images, skip_bad_images, str(images))
    stem = path.stem.replace("cuhk03_new_protocol_config_", "")
    return ReIDDataset(
        query=splits["query"], gallery=splits["gallery"], train=splits["train"],
        gt_bbox=None, name=f"cuhk03-np-{stem}", root=images, skipped=skipped,
    )


def cuhk03_counts(path: str | os.PathLike[str]) -> dict[str, int]:
    """Identities over the camera pairs, test identities per split and splits of a
    ``cuhk-03.mat`` (what tells the published file from another)."""
    p = Path(path)
    with _open_v73(p) as f:
        splits = _cell_refs(f, p, "testsets").reshape(-1)
        sizes = {len(_testset(f, p, s + 1)) for s in range(len(splits))}
        ids = sum(_deref_cell(f, ref, p, f"detected{{{i + 1}}}").shape[0]
                  for i, ref in enumerate(_cell_refs(f, p, "detected").reshape(-1)))
    return {"identities": int(ids), "splits": len(splits),
            "test identities": sizes.pop() if len(sizes) == 1 else -1}
