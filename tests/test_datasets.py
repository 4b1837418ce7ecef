"""Dataset readers: Market/Duke listing and labels, +500k draws, CUHK03 (v7.3 and new
protocol), Oxford5k ground truth, the mini dataset, and the errors that name the file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from matv73 import save_v73
from PIL import Image

from porting.converters.matfile import MatCell
from porting.validation.datasets import (
    DUKE_NAME,
    DatasetError,
    ReIDSplit,
    draw_distractor_subset,
    list_reid_folder,
    load_cuhk03,
    load_cuhk03_np,
    load_cuhk03_train,
    load_dukemtmc,
    load_market1501,
    load_oxford5k,
    matlab_sorted,
    parse_reid_name,
)
from porting.validation.mini import build_mini_market, sample_paths


def _jpeg(path: Path, value: int = 128, size: tuple[int, int] = (4, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    Image.fromarray(arr).save(path, format="JPEG")


# names whose byte order differs from a numeric or case-insensitive order
GALLERY = [
    "0002_c1s1_000451_03.jpg",
    "-1_c3s2_000000_00.jpg",
    "0000_c6s4_002902_01.jpg",
    "1501_c6s4_001877_00.jpg",
    "0010_c2s1_000001_00.jpg",
    "0002_c1s1_000451_02.jpg",
    "-1_c1s1_000401_03.jpg",
    "0000_c1s1_000000_01.jpg",
]
QUERY = ["0002_c2s1_000301_00.jpg", "0010_c5s1_000101_00.jpg"]


def _market(root: Path, gallery=GALLERY, query=QUERY) -> Path:
    for name in gallery:
        _jpeg(root / "bounding_box_test" / name)
    for name in query:
        _jpeg(root / "query" / name)
        _jpeg(root / "gt_bbox" / name)
    _jpeg(root / "bounding_box_train" / "0007_c1s1_000001_00.jpg")
    return root


# --------------------------------------------------------------------------------------------
# Market-1501 / DukeMTMC-reID
# --------------------------------------------------------------------------------------------


def test_market_order_is_byte_order_and_labels_follow_the_official_rule(tmp_path) -> None:
    root = _market(tmp_path / "Market-1501-v15.09.15")
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image")
    ds = load_market1501(tmp_path)  # the release's folder name is found under the root
    assert ds.root == root
    g = ds.gallery
    assert list(g.names) == sorted(GALLERY, key=lambda n: n.encode())
    assert list(g.names) == matlab_sorted(GALLERY)
    assert g.names[:2] == ("-1_c1s1_000401_03.jpg", "-1_c3s2_000000_00.jpg")  # '-' < '0'
    # '-' prefix: id -1, camera name(5); else id name(1:4), camera name(7)
    expected = {
        "-1_c1s1_000401_03.jpg": (-1, 1), "-1_c3s2_000000_00.jpg": (-1, 3),
        "0000_c1s1_000000_01.jpg": (0, 1), "0000_c6s4_002902_01.jpg": (0, 6),
        "0002_c1s1_000451_02.jpg": (2, 1), "0002_c1s1_000451_03.jpg": (2, 1),
        "0010_c2s1_000001_00.jpg": (10, 2), "1501_c6s4_001877_00.jpg": (1501, 6),
    }
    assert [(int(p), int(c)) for p, c in zip(g.pids, g.camids, strict=True)] == \
        [expected[n] for n in g.names]
    assert g.pids.dtype == np.int64 and not g.pids.flags.writeable
    assert [p.name for p in g.paths] == list(g.names)
    assert all(p.parent == root / "bounding_box_test" for p in g.paths)
    assert list(ds.query.pids) == [2, 10] and list(ds.query.camids) == [2, 5]
    assert len(ds.train) == 1 and len(ds.gt_bbox) == 2
    assert ds.ignored == (root / "bounding_box_test" / "Thumbs.db",)
    assert ds.skipped == () and ds.n_distractors == 0


def test_parse_reid_name_matches_the_official_indices() -> None:
    assert parse_reid_name("-1_c4s2_000123_05.jpg") == (-1, 4)
    assert parse_reid_name("0000_c5s3_065187_02.jpg") == (0, 5)
    assert parse_reid_name("0005_c2_f0046985.jpg", DUKE_NAME) == (5, 2)
    with pytest.raises(DatasetError, match=r"some/dir/0001_c1_f0000001\.jpg.*PPPP_cCsS"):
        parse_reid_name("0001_c1_f0000001.jpg", where="some/dir")


@pytest.mark.parametrize(
    "bad",
    ["001_c1s1_000151_01.jpg", "0001_c1s1_000151_01.JPG", "0001_c1s1_151_01.jpg",
     "x0001_c1s1_000151_01.jpg", "0001_c1s1_000151_01.png", "-2_c1s1_000151_01.jpg"],
)
def test_unexpected_file_name_is_an_error_naming_it(tmp_path, bad) -> None:
    root = _market(tmp_path)
    _jpeg(root / "bounding_box_test" / bad)
    with pytest.raises(DatasetError) as err:
        load_market1501(root)
    assert bad in str(err.value) and "bounding_box_test" in str(err.value)


def test_missing_folder_is_an_error_naming_it(tmp_path) -> None:
    root = _market(tmp_path)
    for p in (root / "gt_bbox").iterdir():
        p.unlink()
    (root / "gt_bbox").rmdir()
    with pytest.raises(DatasetError, match=r"missing folder .*gt_bbox"):
        load_market1501(root)
    ds = load_market1501(root, parts=("query", "gallery"))  # only what is asked for
    assert ds.gt_bbox is None and ds.train is None
    with pytest.raises(DatasetError, match=r"dataset root .*nowhere does not exist"):
        load_market1501(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"missing folder: none of .*empty/query"):
        load_market1501(tmp_path / "empty")


def test_unreadable_images_fail_with_count_and_names_or_are_skipped_and_listed(tmp_path) -> None:
    root = _market(tmp_path)
    broken = [root / "bounding_box_test" / "0002_c1s1_000451_03.jpg",
              root / "query" / "0010_c5s1_000101_00.jpg"]
    broken[0].write_bytes(b"")
    broken[1].write_bytes(b"\x00garbage, not a jpeg")
    with pytest.raises(DatasetError) as err:
        load_market1501(root)
    msg = str(err.value)
    assert "2 unreadable image(s)" in msg and all(str(p) in msg for p in broken)
    assert "skip_bad_images" in msg
    ds = load_market1501(root, skip_bad_images=True)
    assert set(ds.skipped) == set(broken)
    assert broken[0].name not in ds.gallery.names and len(ds.gallery) == len(GALLERY) - 1
    assert list(ds.query.names) == ["0002_c2s1_000301_00.jpg"]
    assert load_market1501(root, check_images="none").gallery.names == \
        tuple(matlab_sorted(GALLERY))


def test_duke_layout_and_names(tmp_path) -> None:
    names = ["0005_c2_f0046985.jpg", "0001_c8_f0000001.jpg", "0005_c5_f0100000.jpg"]
    for n in names:
        _jpeg(tmp_path / "DukeMTMC-reID" / "bounding_box_test" / n)
        _jpeg(tmp_path / "DukeMTMC-reID" / "bounding_box_train" / n)
    _jpeg(tmp_path / "DukeMTMC-reID" / "query" / "0005_c1_f0000002.jpg")
    ds = load_dukemtmc(tmp_path)
    assert ds.gallery.names == tuple(sorted(names)) and ds.gt_bbox is None
    assert list(ds.gallery.pids) == [1, 5, 5] and list(ds.gallery.camids) == [8, 2, 5]
    _jpeg(tmp_path / "DukeMTMC-reID" / "query" / "0005_c1s1_000002_00.jpg")  # a Market name
    with pytest.raises(DatasetError, match=r"0005_c1s1_000002_00\.jpg.*PPPP_cC_fFFFFFFF"):
        load_dukemtmc(tmp_path)


# --------------------------------------------------------------------------------------------
# Market-1501 + 500k
# --------------------------------------------------------------------------------------------


def test_distractor_subsets_are_seeded_nested_and_sorted() -> None:
    a = draw_distractor_subset(1000, 100, seed=0)
    assert np.array_equal(a, draw_distractor_subset(1000, 100, seed=0))  # deterministic
    assert np.all(np.diff(a) > 0)  # ascending: dir() order kept
    b = draw_distractor_subset(1000, 200, seed=0)
    c = draw_distractor_subset(1000, 500, seed=0)
    assert set(a) <= set(b) <= set(c)  # nested, as documented
    assert not np.array_equal(a, draw_distractor_subset(1000, 100, seed=1))
    assert np.array_equal(draw_distractor_subset(7, 7, seed=3), np.arange(7))
    # the documented rule, spelled out
    perm = np.random.default_rng(0).permutation(1000)
    assert np.array_equal(b, np.sort(perm[:200]))
    with pytest.raises(DatasetError, match="cannot draw"):
        draw_distractor_subset(10, 11)


def test_market_plus_distractors_appends_a_subset_after_the_gallery(tmp_path) -> None:
    root = _market(tmp_path)
    dnames = [f"0000_c{1 + i % 6}s1_{i:06d}_00.jpg" for i in range(40)]
    for n in dnames:
        _jpeg(root / "images" / n)
    ds = load_market1501(root, parts=("query", "gallery"), distractors=10, distractor_seed=5)
    assert ds.n_distractors == 10 and len(ds.gallery) == len(GALLERY) + 10
    assert ds.gallery.names[: len(GALLERY)] == tuple(matlab_sorted(GALLERY))
    picked = np.array(matlab_sorted(dnames))[draw_distractor_subset(40, 10, 5)]
    assert ds.gallery.names[len(GALLERY):] == tuple(picked)
    assert set(ds.gallery.pids[len(GALLERY):]) == {0}
    assert "default_rng(5)" in ds.distractor_rule and ds.name == "market1501+10"
    again = load_market1501(root, parts=("query", "gallery"), distractors=10,
                            distractor_seed=5)
    assert again.gallery.names == ds.gallery.names
    bigger = load_market1501(root, parts=("query", "gallery"), distractors=20,
                             distractor_seed=5)
    assert set(ds.gallery.names) <= set(bigger.gallery.names)
    with pytest.raises(DatasetError, match=r"100000 distractors asked for.*40"):
        load_market1501(root, parts=("query", "gallery"), distractors="100k")
    with pytest.raises(DatasetError, match=r"missing folder .*nope"):
        load_market1501(root, parts=("query", "gallery"), distractors=5,
                        distractor_dir=root / "nope")
    with pytest.raises(DatasetError, match=r"missing distractor folder.*distractors_500k"):
        load_market1501(_market(tmp_path / "plain"), distractors="100k")


def test_distractors_carrying_a_dataset_identity_are_refused_or_relabelled(tmp_path) -> None:
    root = _market(tmp_path)
    _jpeg(root / "d" / "0002_c1s1_000001_00.jpg")  # id 2 is a query identity
    _jpeg(root / "d" / "0000_c1s1_000002_00.jpg")
    with pytest.raises(DatasetError, match=r"0002_c1s1_000001_00\.jpg"):
        load_market1501(root, distractors="all", distractor_dir=root / "d")
    _jpeg(root / "e" / "any_name_at_all.jpg")
    with pytest.raises(DatasetError, match="any_name_at_all"):
        load_market1501(root, distractors="all", distractor_dir=root / "e")
    ds = load_market1501(root, distractors="all", distractor_dir=root / "e",
                         distractor_names="any")
    assert ds.gallery.names[-1] == "any_name_at_all.jpg" and ds.gallery.pids[-1] == 0


# --------------------------------------------------------------------------------------------
# CUHK03
# --------------------------------------------------------------------------------------------


def _cuhk_image(kind: int, campair: int, ident: int, j: int) -> np.ndarray:
    """A distinct small image per cell (its shape is not square, so a transpose shows)."""
    h, w = 6 + j % 3, 4 + campair % 2
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[..., 0] = kind * 100 + campair
    img[..., 1] = ident
    img[..., 2] = j
    img[0, 0, 0] = 255  # top-left marker
    return img


EMPTY = {(1, 2, 4), (1, 2, 9), (2, 1, 10), (3, 3, 1), (3, 3, 2), (3, 3, 3), (3, 3, 4),
         (3, 3, 5)}  # (campair, id, image): empty cells, as the release has


def _cuhk03_mat(path: Path, n_ids=(3, 2, 4, 2, 3)) -> dict:
    data = {}
    for k, kind in enumerate(("detected", "labeled")):
        pairs = []
        for c, m in enumerate(n_ids, start=1):
            cells = [np.zeros((0, 0)) if (c, i, j) in EMPTY else _cuhk_image(k, c, i, j)
                     for j in range(1, 11) for i in range(1, m + 1)]  # column-major
            pairs.append(MatCell((m, 10), cells))
        data[kind] = MatCell((5, 1), pairs)
    tests = []
    for s in range(20):
        rows = [[3, 3], [1, 2], [2, 1]] if s == 5 else [[1 + s % 5, 1], [5, 2]]
        tests.append(np.array(rows, dtype=np.float64))
    data["testsets"] = MatCell((20, 1), tests)
    save_v73(path, data)
    return data


def test_cuhk03_v73_test_split_in_prepare_test_order(tmp_path) -> None:
    path = tmp_path / "cuhk-03.mat"
    _cuhk03_mat(path)
    sp = load_cuhk03(path)  # default split 6 (testsets{6}), detected
    assert sp.split == 6 and sp.kind == "detected"
    assert sp.identities.tolist() == [[3, 3], [1, 2], [2, 1]]
    # identity by identity in testsets row order; images 1-5 -> camera A, 6-10 -> camera B
    exp_a = [(3, 3, j, 1) for j in range(1, 6) if (3, 3, j) not in EMPTY]
    exp_a += [(1, 2, j, 2) for j in range(1, 6) if (1, 2, j) not in EMPTY]
    exp_a += [(2, 1, j, 3) for j in range(1, 6) if (2, 1, j) not in EMPTY]
    exp_b = [(c, i, j, lab) for c, i, lab in ((3, 3, 1), (1, 2, 2), (2, 1, 3))
             for j in range(6, 11) if (c, i, j) not in EMPTY]
    assert [tuple(k) for k in sp.camera_a.keys.tolist()] == [e[:3] for e in exp_a]
    assert sp.label_a.tolist() == [e[3] for e in exp_a] == [2, 2, 2, 2, 3, 3, 3, 3, 3]
    assert [tuple(k) for k in sp.camera_b.keys.tolist()] == [e[:3] for e in exp_b]
    assert sp.label_b.tolist() == [e[3] for e in exp_b]
    for imgs, exp in ((sp.camera_a, exp_a), (sp.camera_b, exp_b)):
        assert len(imgs) == len(exp)
        for k, (c, i, j, _) in enumerate(exp):
            got = imgs[k]
            assert got.dtype == np.uint8 and got.flags.c_contiguous
            assert np.array_equal(got, _cuhk_image(0, c, i, j))  # HxWx3, transposed back
    assert sp.camera_a.names[0] == "1_002_1_01"
    labeled = load_cuhk03(path, kind="labeled")
    assert np.array_equal(labeled.camera_b[0], _cuhk_image(1, 3, 3, 6))
    # lazily re-opened after pickling (DataLoader workers)
    clone = pickle.loads(pickle.dumps(sp.camera_b))
    assert np.array_equal(clone[-1], sp.camera_b[-1])
    assert len(sp.camera_b[2:4]) == 2 and np.array_equal(sp.camera_b[2:4][0], sp.camera_b[2])
    sp.camera_a.close()
    assert sp.camera_a.cache_token() != labeled.camera_a.cache_token()


def test_cuhk03_train_numbers_non_test_identities_as_prepare_imdb(tmp_path) -> None:
    path = tmp_path / "cuhk-03.mat"
    _cuhk03_mat(path)
    imgs, labels = load_cuhk03_train(path, split=6)
    test = {(3, 3), (1, 2), (2, 1)}
    ids = [(c, i) for c, m in enumerate((3, 2, 4, 2, 3), start=1) for i in range(1, m + 1)
           if (c, i) not in test]
    exp = [(c, i, j, lab) for lab, (c, i) in enumerate(ids, start=1) for j in range(1, 11)
           if (c, i, j) not in EMPTY]
    assert [tuple(k) for k in imgs.keys.tolist()] == [e[:3] for e in exp]
    assert labels.tolist() == [e[3] for e in exp] and labels.max() == len(ids)
    assert np.array_equal(imgs[0], _cuhk_image(0, 1, 1, 1))


def test_cuhk03_errors_name_the_problem(tmp_path) -> None:
    path = tmp_path / "cuhk-03.mat"
    _cuhk03_mat(path)
    with pytest.raises(DatasetError, match=r"split 21 out of range 1\.\.20"):
        load_cuhk03(path, split=21)
    with pytest.raises(DatasetError, match="missing file"):
        load_cuhk03(tmp_path / "none.mat")
    v5 = tmp_path / "v5.mat"
    scipy.io.savemat(v5, {"testsets": np.zeros((2, 2))})
    with pytest.raises(DatasetError, match=r"v5\.mat: not a MATLAB v7\.3"):
        load_cuhk03(v5)
    other = tmp_path / "other.mat"
    save_v73(other, {"testsets": MatCell((1, 1), [np.array([[1.0, 9.0]])]),
                     "detected": MatCell((1, 1), [MatCell((1, 10), [np.zeros((0, 0))] * 10)])})
    with pytest.raises(DatasetError, match=r"identity 9 out of range 1\.\.1"):
        load_cuhk03(other, split=1)
    with pytest.raises(DatasetError, match="no variable 'labeled'"):
        load_cuhk03(other, split=1, kind="labeled")


def _np_protocol(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    images = tmp_path / "images_detected"
    images.mkdir()
    files = ["1_001_1_01.png", "1_001_2_06.png", "2_010_1_02.png", "2_010_2_07.png",
             "3_100_1_01.png", "3_100_2_09.png", "1_002_1_01.png"]
    for k, n in enumerate(files):
        Image.fromarray(np.full((8, 4, 3), k, dtype=np.uint8)).save(images / n)
    cell = np.empty((len(files), 1), dtype=object)
    for k, n in enumerate(files):
        cell[k, 0] = np.array([n])
    config = tmp_path / "cuhk03_new_protocol_config_detected.mat"
    scipy.io.savemat(config, {
        "filelist": cell,
        "labels": np.array([[1], [1], [2], [2], [3], [3], [4]], dtype=np.float64),
        "train_idx": np.array([[7]], dtype=np.float64),
        "query_idx": np.array([[3], [2]], dtype=np.float64),
        "gallery_idx": np.array([[1], [4], [5], [6]], dtype=np.float64),
    })
    return config, images, files


def test_cuhk03_new_protocol_reader(tmp_path) -> None:
    config, images, files = _np_protocol(tmp_path)
    ds = load_cuhk03_np(config, images)
    assert ds.name == "cuhk03-np-detected" and ds.gt_bbox is None
    assert ds.query.names == (files[2], files[1])  # config order, not sorted
    assert list(ds.query.pids) == [2, 1] and list(ds.query.camids) == [1, 2]
    assert ds.gallery.names == (files[0], files[3], files[4], files[5])
    assert list(ds.gallery.camids) == [1, 2, 1, 2] and list(ds.gallery.pids) == [1, 2, 3, 3]
    assert ds.train.names == (files[6],) and ds.gallery.paths[0] == images / files[0]
    (images / files[4]).unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) .*missing: 3_100_1_01\.png"):
        load_cuhk03_np(config, images)
    mat = scipy.io.loadmat(config)
    del mat["gallery_idx"]
    scipy.io.savemat(config, {k: v for k, v in mat.items() if not k.startswith("__")})
    with pytest.raises(DatasetError, match="no field 'gallery_idx'"):
        load_cuhk03_np(config, images)


# --------------------------------------------------------------------------------------------
# Oxford5k
# --------------------------------------------------------------------------------------------


def _oxford(tmp_path: Path) -> tuple[Path, Path]:
    gt, imgs = tmp_path / "gt", tmp_path / "jpg"
    gt.mkdir()
    for n in ("all_souls_000013", "all_souls_000026", "ashmolean_000007", "balliol_000001",
              "christ_church_000179"):
        _jpeg(imgs / f"{n}.jpg", size=(20, 16))
    (gt / "ashmolean_1_query.txt").write_text("oxc1_ashmolean_000007 2.5 3.5 12.5 10.6\n")
    (gt / "ashmolean_1_good.txt").write_text("ashmolean_000007\n")
    (gt / "ashmolean_1_ok.txt").write_text("")
    (gt / "ashmolean_1_junk.txt").write_text("balliol_000001\n")
    (gt / "all_souls_1_query.txt").write_text("oxc1_all_souls_000013 136.5 34.1 648.5 955.7\n")
    (gt / "all_souls_1_good.txt").write_text("all_souls_000013\nall_souls_000026\n")
    (gt / "all_souls_1_ok.txt").write_text("christ_church_000179\r\n")
    (gt / "all_souls_1_junk.txt").write_text("\n")
    return gt, imgs


def test_oxford5k_ground_truth(tmp_path) -> None:
    gt, imgs = _oxford(tmp_path)
    ox = load_oxford5k(gt, imgs)
    assert ox.images == ("all_souls_000013", "all_souls_000026", "ashmolean_000007",
                         "balliol_000001", "christ_church_000179")
    assert [q.name for q in ox.queries] == ["all_souls_1", "ashmolean_1"]
    q0, q1 = ox.queries
    assert q0.image == "all_souls_000013" and q0.box == (136.5, 34.1, 648.5, 955.7)
    assert q0.good == ("all_souls_000013", "all_souls_000026")
    assert q0.ok == ("christ_church_000179",) and q0.junk == ()
    assert q0.positives == q0.good + q0.ok
    assert q1.junk == ("balliol_000001",) and ox.index["balliol_000001"] == 3
    assert ox.query_path(q1) == imgs / "ashmolean_000007.jpg"
    crop = ox.query_crop(q1)  # PIL rounding: round(2.5)=2, round(3.5)=4, 12.5->12, 10.6->11
    assert crop.shape == (11 - 4, 12 - 2, 3) and crop.dtype == np.uint8
    (gt / "ashmolean_1_ok.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing ground-truth file .*ashmolean_1_ok\.txt"):
        load_oxford5k(gt, imgs)
    (gt / "ashmolean_1_ok.txt").write_text("radcliffe_camera_000519\n")
    with pytest.raises(DatasetError, match="radcliffe_camera_000519"):
        load_oxford5k(gt, imgs)
    (gt / "ashmolean_1_ok.txt").write_text("")
    (imgs / "balliol_000001.jpg").write_bytes(b"broken")
    with pytest.raises(DatasetError, match=r"1 unreadable image.*balliol_000001\.jpg"):
        load_oxford5k(gt, imgs)
    ox = load_oxford5k(gt, imgs, skip_bad_images=True)
    assert ox.skipped == (imgs / "balliol_000001.jpg",) and "balliol_000001" not in ox.images


# --------------------------------------------------------------------------------------------
# The mini dataset
# --------------------------------------------------------------------------------------------


def test_mini_market_is_complete_consistent_deterministic(tmp_path) -> None:
    """(Its build time is measured in bench/preprocess.py, not here.)"""
    assert len(sample_paths()) == 13
    root = build_mini_market(tmp_path / "a", seed=0)
    ds = load_market1501(root, check_images="decode")
    assert set(ds.query.names) == {p.name for p in sample_paths()} - set(ds.gallery.names)
    g = ds.gallery
    assert {0, -1} <= set(g.pids.tolist())
    for pid, cam in zip(ds.query.pids, ds.query.camids, strict=True):
        good = (g.pids == pid) & (g.camids != cam)
        assert good.any(), f"query id {pid} has no match in another camera"
        assert ((ds.gt_bbox.pids == pid) & (ds.gt_bbox.camids == cam)).sum() >= 2
    assert not set(ds.train.pids.tolist()) & set(g.pids.tolist())
    for pid in set(ds.train.pids.tolist()):
        assert len(set(ds.train.camids[ds.train.pids == pid].tolist())) >= 2
    size = sum(p.stat().st_size for p in root.rglob("*.jpg"))
    assert size < 1_000_000
    other = build_mini_market(tmp_path / "b", seed=0)
    files_a = sorted(p.relative_to(root) for p in root.rglob("*.jpg"))
    assert files_a == sorted(p.relative_to(other) for p in other.rglob("*.jpg"))
    assert all((root / f).read_bytes() == (other / f).read_bytes() for f in files_a)
    third = build_mini_market(tmp_path / "c", seed=1)
    assert sorted(p.name for p in third.rglob("*.jpg")) != sorted(p.name for p in files_a)
    with pytest.raises(FileExistsError):
        build_mini_market(root)
    with pytest.raises(ValueError, match="at least"):
        build_mini_market(tmp_path / "d", n_generated=3)


def test_split_helpers(tmp_path) -> None:
    s = ReIDSplit([tmp_path / "a.jpg", tmp_path / "b.jpg"], [1, 2], [3, 4], ["a.jpg", "b.jpg"])
    assert len(s) == 2 and s.subset([1]).names == ("b.jpg",)
    assert ReIDSplit.concat(s, s.subset([0])).pids.tolist() == [1, 2, 1]
    assert s.without([tmp_path / "a.jpg"]).names == ("b.jpg",)
    with pytest.raises(ValueError, match="differ in length"):
        ReIDSplit([tmp_path / "a.jpg"], [1, 2], [3], ["a.jpg"])
    split, ignored = list_reid_folder(_market(tmp_path / "m") / "query")
    assert split.names == tuple(QUERY) and ignored == []
    os.mkdir(tmp_path / "m" / "query" / "sub")
    assert list_reid_folder(tmp_path / "m" / "query")[1] == [tmp_path / "m" / "query" / "sub"]
