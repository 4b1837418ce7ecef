"""Output files: nothing partial on errors or SIGINT/SIGTERM, the user's umask on the final
file, and no empty output folder left by a failed run (issue #11)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from porting.checkpoint import atomic_write as checkpoint_atomic_write
from porting.checkpoint import make_checkpoint, save_checkpoint
from porting.outputs import atomic_write, file_mode, is_partial_file, output_dir

ROOT = Path(__file__).resolve().parents[1]

# A child that starts an atomic write, says so on stdout, then waits inside it to be killed.
# It loads porting/outputs.py alone (no torch import: the child starts in well under a second).
_CHILD = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("outputs", sys.argv[2])
    outputs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(outputs)

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        print("writing", flush=True)
        time.sleep(60)

    outputs.atomic_write(sys.argv[1], write)
""")


def test_checkpoint_module_keeps_atomic_write() -> None:
    assert checkpoint_atomic_write is atomic_write


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_final_file_gets_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    """mkstemp creates 0600; the rename used to keep it, so colleagues could not read the
    converted checkpoint. ``cp`` gives 0666 & ~umask."""
    old = os.umask(mask)
    try:
        atomic_write(tmp_path / "out.txt", lambda tmp: Path(tmp).write_text("x"))
        save_checkpoint(tmp_path / "c.pth", make_checkpoint({}, arch={"name": "resnet50"}))
        assert file_mode() == mode
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "c.pth").stat().st_mode) == mode


def test_error_leaves_nothing_and_restores_handlers(tmp_path: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    seen = {}

    def boom(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        seen.update({s: signal.getsignal(s) for s in before})
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "out.pth", boom)
    assert list(tmp_path.iterdir()) == []
    assert all(seen[s] is not before[s] for s in before)  # ours, during the write
    assert {s: signal.getsignal(s) for s in before} == before  # restored after


def _start_child(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    target = tmp_path / "net.pth"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(target),
                              str(ROOT / "porting" / "outputs.py")], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert child.stdout.readline().strip() == b"writing"
    assert any(is_partial_file(p.name) for p in tmp_path.iterdir())  # the temp file exists
    return child, target


def test_sigterm_during_a_write_leaves_no_temp_file(tmp_path: Path) -> None:
    child, target = _start_child(tmp_path)
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM  # still dies by the signal, as before
    assert list(tmp_path.iterdir()) == []
    assert not target.exists()


def test_sigint_during_a_write_leaves_no_temp_file(tmp_path: Path) -> None:
    child, target = _start_child(tmp_path)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert b"KeyboardInterrupt" in err  # Python's usual SIGINT behaviour is kept
    assert child.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_output_dir_removed_on_failure_if_created(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "a"
    with pytest.raises(RuntimeError), output_dir(out) as d:
        assert d.is_dir()
        (d / ".net-epoch-1.pth.abc123.tmp").write_bytes(b"partial")
        raise RuntimeError("training diverged")
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_output_dir_kept_when_it_has_results_or_existed(tmp_path: Path) -> None:
    out = tmp_path / "b"
    with pytest.raises(RuntimeError), output_dir(out) as d:
        (d / "log.json").write_text("{}")
        raise RuntimeError("later failure")
    assert (out / "log.json").exists()
    existing = tmp_path / "c"
    existing.mkdir()
    with pytest.raises(KeyboardInterrupt), output_dir(existing):
        raise KeyboardInterrupt
    assert existing.is_dir()
    with output_dir(tmp_path / "d") as d:
        pass
    assert d.is_dir()  # success keeps even an empty folder
