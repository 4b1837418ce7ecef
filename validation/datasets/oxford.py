"""Oxford5k: the ``gt_files_170407`` ground truth and the query boxes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from porting.validation.datasets.common import (
    DatasetError,
    bad_images_error,
    matlab_sorted,
    names_excerpt,
)
from porting.validation.datasets.common import (
    check_images as find_bad_images,  # the loader's `check_images` argument shadows the name
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
                               f"truth are not in {imgs}: {names_excerpt(missing)}")
        queries.append(OxfordQuery(qname, image, box, sets["good"], sets["ok"], sets["junk"]))
    paths = [imgs / f"{n}.jpg" for n in names]
    bad = find_bad_images(paths, check_images)
    skipped: tuple[Path, ...] = ()
    if bad:
        qimages = {imgs / f"{q.image}.jpg" for q in queries}
        if not skip_bad_images or any(p in qimages for p, _ in bad):
            raise bad_images_error(bad, str(imgs))
        skipped = tuple(p for p, _ in bad)
        drop = set(skipped)
        keep = [i for i, p in enumerate(paths) if p not in drop]
        names, paths = [names[i] for i in keep], [paths[i] for i in keep]
    return Oxford5k(tuple(names), tuple(paths), tuple(queries), gt, imgs, skipped)

