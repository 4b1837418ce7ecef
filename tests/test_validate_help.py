"""validate --help: every flag has help text, and every example of the epilog runs as
written (in a folder holding files of the names it uses: the mini Market-1501, the narrow
two-stream fixture net, feature files and a small cuhk-03.mat)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from matv73 import save_v73

from porting.converters.matconvnet import main as convert_main
from porting.converters.matfile import MatCell
from porting.validation.cli import build_parser
from porting.validation.cli import main as validate_main
from porting.validation.datasets import load_market1501
from porting.validation.mini import build_mini_market

from conftest import FIXTURES


def test_every_flag_has_help() -> None:
    missing = [a.option_strings or a.dest for a in build_parser()._actions
               if not a.help or a.help == argparse.SUPPRESS]
    assert missing == []


def examples() -> list[list[str]]:
    """The command lines of the epilog (continuation lines joined), without the command."""
    out, current = [], ""
    for line in build_parser().epilog.splitlines():
        s = line.strip()
        if current:
            current += " " + s
        elif s and not s.startswith("#") and "validate " in s:
            current = s
        if current and not current.endswith("\\"):
            tokens = shlex.split(current.replace("\\ ", " "))
            out.append(tokens[tokens.index("validate") + 1:])
            current = ""
        elif current:
            current = current[:-1].rstrip()
    return out


def _cuhk03_mat(path: Path) -> None:
    """5 camera pairs of 20 identities, images 1 and 6 filled; 20 test splits, all the same
    100 identities (so that --cache-dir extracts them once)."""
    rng = np.random.default_rng(0)
    data = {}
    for kind in ("detected", "labeled"):
        pairs = []
        for _ in range(5):
            cells = [rng.integers(0, 256, (12, 6, 3), dtype=np.uint8) if j in (1, 6)
                     else np.zeros((0, 0)) for j in range(1, 11) for _ in range(20)]
            pairs.append(MatCell((20, 10), cells))
        data[kind] = MatCell((5, 1), pairs)
    rows = np.array([[c, i] for c in range(1, 6) for i in range(1, 21)], dtype=np.float64)
    data["testsets"] = MatCell((20, 1), [rows] * 20)
    save_v73(path, data)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("examples")
    root = build_mini_market(d / "Market-1501-v15.09.15")
    assert convert_main([str(FIXTURES / "matconvnet/resnet52_2stream_narrow/model.mat"),
                         "-o", str(d / "net-epoch-75.pth"), "-q"]) == 0
    data = load_market1501(root, parts=("query", "gallery"))
    rng = np.random.default_rng(0)
    for name, n in (("resnet_query.mat", len(data.query.pids)),
                    ("resnet_gallery.mat", len(data.gallery.pids))):
        scipy.io.savemat(d / name, {"ff": rng.standard_normal((n, 16)).astype(np.float32)})
    _cuhk03_mat(d / "cuhk-03.mat")
    return d


def test_the_epilog_has_examples() -> None:
    assert 2 <= len(examples()) <= 3
    assert all("--root" in ex for ex in examples())


@pytest.mark.parametrize("i", range(len(examples())))
def test_every_help_example_runs(i: int, folder: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(folder)
    argv = examples()[i] + ["-q"]
    rc = validate_main(argv)
    out, err = capsys.readouterr()
    assert "error:" not in err
    if "--check" in argv:  # the mini set is not the published test set: check impossible
        assert rc == 2 and "not the published test set" in err
    else:
        assert rc == 0
    for flag in ("--json", "--plot"):
        if flag in argv:
            assert (folder / argv[argv.index(flag) + 1]).stat().st_size > 0
    if "--json" in argv:
        r = json.loads((folder / argv[argv.index("--json") + 1]).read_text())
        assert {"multi-query max", "camera pairs"} <= set(r["protocols"])
    if "--visrank" in argv:
        folder_out = folder / argv[argv.index("--visrank-dir") + 1]
        pngs = sorted(folder_out.glob("0*.png"))  # one per query, then the contact sheet
        assert len(pngs) == int(argv[argv.index("--visrank-queries") + 1])
        assert (folder_out / "ranked_lists.png").is_file()
    if "--re-rank" in argv:
        assert "k-reciprocal re-ranking" in out
    if "--cuhk03-splits" in argv:
        assert "mean over splits 1..20" in out


def test_distractors_error_names_the_flag(folder: Path, capsys) -> None:
    rc = validate_main(["--root", str(folder / "Market-1501-v15.09.15"), "--features",
                        str(folder / "resnet_query.mat"), str(folder / "resnet_gallery.mat"),
                        "--distractors", "100k"])
    err = capsys.readouterr().err
    assert rc == 2 and "--distractor-dir" in err and "distractor_dir" not in err
