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

The loaders, by dataset: :mod:`~porting.validation.datasets.market` (Market-1501 +500k,
DukeMTMC-reID), :mod:`~porting.validation.datasets.cuhk03`,
:mod:`~porting.validation.datasets.oxford`; what they share in
:mod:`~porting.validation.datasets.common`.
"""

from porting.validation.datasets.common import (
    CUHK03_DEFAULT_SPLIT,
    CUHK03_NP_NAME,
    DISTRACTOR_SIZES,
    DUKE_NAME,
    MARKET_FOLDERS,
    MARKET_NAME,
    DatasetError,
    ReIDDataset,
    ReIDSplit,
    check_images,
    list_reid_folder,
    matlab_sorted,
    parse_reid_name,
)
from porting.validation.datasets.cuhk03 import (
    CUHK03Images,
    CUHK03Split,
    cuhk03_counts,
    load_cuhk03,
    load_cuhk03_np,
    load_cuhk03_train,
)
from porting.validation.datasets.market import (
    draw_distractor_subset,
    load_dukemtmc,
    load_market1501,
)
from porting.validation.datasets.oxford import (
    Oxford5k,
    OxfordQuery,
    load_oxford5k,
)

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
    "cuhk03_counts",
    "OxfordQuery",
    "Oxford5k",
    "load_oxford5k",
]
