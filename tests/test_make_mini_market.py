"""``reid-porting make-mini-market DIR``: the builder the demo, tests and benchmarks share, as
one command: the same bytes as :func:`build_mini_market`, all or nothing, one line on error."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from porting.cli import main as cli_main
from porting.validation import mini
from porting.validation.datasets import MARKET_FOLDERS


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_the_command_writes_what_the_builder_writes(tmp_path: Path, capsys) -> None:
    assert cli_main(["make-mini-market", str(tmp_path / "cmd"), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    ref = mini.build_mini_market(tmp_path / "ref", seed=3)
    got = _tree(tmp_path / "cmd")
    assert got == _tree(ref) and len(got) > 13
    assert {Path(k).parts[0] for k in got} == set(MARKET_FOLDERS.values())
    n_query = sum(1 for k in got if k.startswith("query/"))
    assert f"{n_query} query" in out
    assert sorted(os.listdir(tmp_path)) == ["cmd", "ref"]  # no temporary folder left


def test_refusals_are_one_line_and_change_nothing(tmp_path: Path, capsys) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    assert cli_main(["make-mini-market", str(full)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "Traceback" not in err
    assert os.listdir(full) == ["keep.txt"]
    assert cli_main(["make-mini-market", str(tmp_path / "few"), "--generated", "3"]) == 2
    assert "--generated must be at least" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    assert cli_main(["make-mini-market", str(tmp_path / "afile" / "x")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["afile", "full"]


def test_an_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    real = mini.build_mini_market

    def interrupted(root, **kw):
        real(root, **kw)  # every file written, then Ctrl-C before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(mini, "build_mini_market", interrupted)
    rc = cli_main(["make-mini-market", str(tmp_path / "m")])
    assert rc == 128 + signal.SIGINT
    assert "Traceback" not in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_an_empty_existing_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert mini.make_mini_market(tmp_path / "empty").is_dir()
    assert (tmp_path / "empty" / "query").is_dir()
    with pytest.raises(FileExistsError):
        mini.make_mini_market(tmp_path / "empty")
