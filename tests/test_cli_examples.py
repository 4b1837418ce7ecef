"""Every example of every ``--help`` and of the README's command sections runs.

The examples name the files a user of the released models has (``net-epoch-75.mat``,
``deploy.prototxt``, ``Market-1501-v15.09.15``...); here those names are the bundled narrow
fixture models and a mini Market-1501, laid out in a sandbox folder, and each command line runs
there in a subprocess, in order (conversions first), exactly as printed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from porting.cli import COMMANDS, EXAMPLES, examples_epilog

from conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
#: How each installed command runs here (``python -m``: no dependence on PATH).
MODULES = {"reid-porting": "porting.cli", "convert-matconvnet": "porting.convert_matconvnet",
           "convert-caffe": "porting.convert_caffe", "validate": "porting.validate"}
#: Verbs in the order their examples can run (later ones use earlier outputs).
ORDER = ["convert-matconvnet", "convert-caffe", "compare", "export", "train", "validate"]


def _sandbox(path: Path) -> Path:
    from porting.validation.mini import build_mini_market

    shutil.copy(FIXTURES / "matconvnet" / "resnet52_2stream_narrow" / "model.mat",
                path / "net-epoch-75.mat")
    for name in ("deploy.prototxt", "weights.caffemodel"):
        shutil.copy(FIXTURES / "caffe" / "resnet50_narrow" / name, path / name)
    shutil.copy(FIXTURES / "models" / "mcn_2stream_256.npz", path / "net-epoch-75_outputs.npz")
    build_mini_market(path / "Market-1501-v15.09.15")
    return path


def _argv(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    return [sys.executable, "-m", MODULES[words[0]], *words[1:]]


def _run(line: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(_argv(line), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def _help_examples(verb: str) -> list[str]:
    out = subprocess.run(_argv(f"reid-porting {verb} --help"), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert examples_epilog(verb).splitlines()[0] in out.stdout
    lines = out.stdout.split("examples:", 1)[1].splitlines()
    return [ln.strip() for ln in lines if ln.strip().startswith(tuple(MODULES))]


def _readme_examples() -> list[str]:
    """Command lines of the README's bash blocks (backslash continuations joined)."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for cmd in block.replace("\\\n", " ").splitlines():
            cmd = cmd.strip()
            if cmd.startswith(tuple(MODULES)):
                out.append(cmd)
    return out


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    return _sandbox(tmp_path_factory.mktemp("examples"))


def test_every_help_has_examples_and_every_flag_has_help() -> None:
    for verb in COMMANDS:
        out = subprocess.run(_argv(f"reid-porting {verb} --help"), capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, (verb, out.stderr)
        assert "examples:" in out.stdout, verb
        assert len(_help_examples(verb)) >= 2, verb
        module = __import__(COMMANDS[verb].module, fromlist=["build_parser"])
        parser = module.build_parser()
        undocumented = [a.dest for a in parser._actions if not a.help]
        assert not undocumented, (verb, undocumented)


@pytest.mark.parametrize("verb", [v for v in ORDER if v in EXAMPLES])
def test_help_examples_run(verb: str, sandbox: Path) -> None:
    for line in _help_examples(verb):
        out = _run(line, sandbox)
        assert out.returncode == 0, (line, out.stderr[-2000:])


def test_readme_examples_run(sandbox: Path) -> None:
    lines = _readme_examples()
    assert len(lines) >= 5
    for line in sorted(lines, key=lambda c: ORDER.index(_verb(c)) if _verb(c) in ORDER else 0):
        out = _run(line, sandbox)
        assert out.returncode == 0, (line, out.stderr[-2000:])


def _verb(line: str) -> str:
    words = shlex.split(line, comments=True)
    return words[1] if words[0] == "reid-porting" else words[0]


def test_no_installed_command_shadows_a_builtin_or_a_unix_tool() -> None:
    text = (ROOT / "pyproject.toml").read_text().split("[project.scripts]", 1)[1]
    scripts = re.findall(r"^([\w-]+) = ", text.split("\n[", 1)[0], re.M)
    assert "reid-porting" in scripts and {"export", "train", "compare"}.isdisjoint(scripts)
    for name in scripts:
        kind = subprocess.run(["bash", "-c", f"type -t {shlex.quote(name)} || true"],
                              capture_output=True, text=True,
                              env={"PATH": "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"})
        assert kind.stdout.strip() not in ("builtin", "keyword", "alias"), name
        assert not any(Path(d, name).exists() for d in ("/usr/bin", "/bin", "/usr/sbin"))
    # the shell's own export is what `export` finds
    assert subprocess.run(["bash", "-c", "type -t export"], capture_output=True,
                          text=True).stdout.strip() == "builtin"
