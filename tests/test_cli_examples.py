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
ORDER = ["make-mini-market", "convert-matconvnet", "convert-caffe", "convert-checkpoint",
         "compare", "dump-tools", "export", "train", "validate"]


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


def _readme_blocks() -> list[str]:
    """The README's bash blocks that run commands of this project (not ``make``)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [b for b in blocks if re.search(r"^(reid-porting|convert-|validate) ", b, re.M)
            and not re.search(r"^make ", b, re.M)]


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
    """Each block runs as a bash script (``set -e``) in the sandbox, where ``tests/`` is the
    repository's, with the project's commands first on PATH."""
    blocks = _readme_blocks()
    assert len(blocks) >= 2 and sum(b.count("reid-porting ") for b in blocks) >= 20
    (sandbox / "tests").unlink(missing_ok=True)
    (sandbox / "tests").symlink_to(ROOT / "tests")
    bindir = _command_dir(sandbox / ".bin")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    for block in blocks:
        out = subprocess.run(["bash", "-e", "-c", block], cwd=sandbox, env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, (block[:200], out.stderr[-2000:])


def _command_dir(wrappers: Path) -> Path:
    """A folder holding the project's commands: the installed console scripts when they are
    there (``make test``), else small wrappers around ``python -m``."""
    here = Path(sys.executable).parent
    if (here / "reid-porting").exists():
        return here
    wrappers.mkdir(parents=True, exist_ok=True)
    for name, module in MODULES.items():
        path = wrappers / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        path.chmod(0o755)
    return wrappers


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
