"""The shipped dump tools (``reid-porting dump-tools``), run under the real source frameworks
and read back by ``compare``.

The runs under GNU Octave + MatConvNet and under pycaffe are slow and need those installed:
they run only under ``make test-sources`` (``REID_PORTING_SOURCES=1``) and skip, saying why,
where Octave, MatConvNet (``MATCONVNET_SETUP``: a .m that puts it on the path) or pycaffe
(``PYCAFFE_PYTHON``: a Python that imports caffe) is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from porting.converters.caffe import main as convert_caffe
from porting.converters.compare import main as compare_main
from porting.converters.dump import FOLDER, TOOLS
from porting.converters.dump import main as dump_tools
from porting.converters.matconvnet import main as convert_matconvnet

from conftest import FIXTURES

SOURCES = os.environ.get("REID_PORTING_SOURCES") == "1"


def test_dump_tools_copies_both_tools_and_refuses_to_overwrite(tmp_path, capsys) -> None:
    assert dump_tools([str(tmp_path / "tools")]) == 0
    for name in TOOLS:
        assert (tmp_path / "tools" / name).read_bytes() == (FOLDER / name).read_bytes()
    capsys.readouterr()
    assert dump_tools([str(tmp_path / "tools")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert dump_tools(["--print-path"]) == 0
    assert Path(capsys.readouterr().out.strip()) == FOLDER


def _compare(ckpt: Path, ref: Path, tmp_path: Path) -> dict:
    report = tmp_path / f"{ref.stem}.json"
    rc = compare_main([str(ckpt), str(ref), "--json", str(report)])
    got = json.loads(report.read_text())
    print(f"{ref.name}: {got['compared']} of {got['outputs']} outputs, worst "
          f"{got['worst']['name']} {got['worst']['max_rel']:.3g} relative")
    assert rc == 0 and got["passed"]
    return got


def _octave_setup() -> str:
    if not SOURCES:
        pytest.skip("runs under `make test-sources` (REID_PORTING_SOURCES=1)")
    if shutil.which("octave") is None:
        pytest.skip("GNU Octave is not installed (apt-get install octave)")
    setup = os.environ.get("MATCONVNET_SETUP", "")
    if not setup or not Path(setup).is_file():
        pytest.skip("MATCONVNET_SETUP does not name a .m that puts MatConvNet (with its CPU "
                    "mex files) on the path")
    return setup


# CaffeNet is not here: MatConvNet beta23's CPU vl_nnnormalize always uses an approximate
# power (VL_NNNORMALIZE_FAST in normalize_cpu.cpp), where its GPU kernel and the fixtures'
# build use the exact one, so its LRN outputs differ from those by ~3e-3 relative.
@pytest.mark.parametrize("net", ["vgg16_narrow", "resnet50_narrow"])
def test_matconvnet_dump_under_octave_matches_the_conversion(net: str, tmp_path) -> None:
    setup = _octave_setup()
    model = FIXTURES / "matconvnet" / net / "model.mat"
    dump = tmp_path / f"{net}.mat"
    code = (f"run('{setup}'); addpath('{FOLDER}'); "
            f"reid_porting_dump('{model}', '{dump}', 'batch', 2);")
    run = subprocess.run(["octave", "--no-gui", "--quiet", "--eval", code],
                         capture_output=True, text=True, timeout=900)
    assert dump.exists(), run.stderr[-2000:]
    ckpt = tmp_path / "m.pth"
    assert convert_matconvnet([str(model), "-o", str(ckpt), "-q", "--arch", "none"]) == 0
    got = _compare(ckpt, dump, tmp_path)
    assert got["compared"] >= 30 and got["rows"][0]["shape"][0] == 2


def _pycaffe() -> str:
    if not SOURCES:
        pytest.skip("runs under `make test-sources` (REID_PORTING_SOURCES=1)")
    python = os.environ.get("PYCAFFE_PYTHON") or "python3"
    if shutil.which(python) is None or subprocess.run(
            [python, "-c", "import caffe"], capture_output=True).returncode != 0:
        pytest.skip(f"{python} cannot import caffe (set PYCAFFE_PYTHON and PYTHONPATH to a "
                    "built pycaffe)")
    return python


@pytest.mark.parametrize("net", ["caffenet_narrow", "resnet50_narrow"])
def test_pycaffe_dump_matches_the_conversion(net: str, tmp_path) -> None:
    python = _pycaffe()
    folder = FIXTURES / "caffe" / net
    dump = tmp_path / f"{net}.npz"
    run = subprocess.run([python, str(FOLDER / "reid_porting_dump_caffe.py"),
                          str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"),
                          "-o", str(dump)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    ckpt = tmp_path / "m.pth"
    assert convert_caffe([str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"),
                          "-o", str(ckpt), "-q", "--arch", "none"]) == 0
    got = _compare(ckpt, dump, tmp_path)
    names = [r["name"] for r in got["rows"]]
    assert any("@" in n for n in names), "values overwritten in place are dumped too"
    assert got["rows"][0]["shape"][0] == 2
