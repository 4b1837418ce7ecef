"""Writing output files so that a failed or interrupted run leaves nothing half-written.

Every file the project writes (checkpoints, features, logs, plots, JSON) goes through
:func:`atomic_write`: the content is written to a temporary file next to the target and renamed
onto it only once complete. The temporary file is removed when the writer raises, and also when
the process receives SIGINT or SIGTERM while writing (the handlers are installed only for the
duration of the write, then the previous ones are restored; after the clean-up the signal takes
its usual course: ``KeyboardInterrupt`` for SIGINT, death by the signal for SIGTERM). The final
file gets the mode ``cp`` would give a new file, ``0o666 & ~umask``, not the 0600 of
``mkstemp``.

:func:`output_dir` does the same for a run's output folder: created if missing, and removed on
failure or interruption if this run created it and it holds nothing but partial files.

:func:`check_output_file` and :func:`check_output_dir` say, before anything is computed or
written, that an output cannot be written (a path under a regular file, an existing folder given
as a file or the reverse, a folder this process may not write in); both writers apply them too.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["atomic_write", "output_dir", "file_mode", "is_partial_file", "partial_target",
           "check_output_file", "check_output_dir"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PARTIAL = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")  # what atomic_write names its temp files

_lock = threading.RLock()
_pending_files: dict[str, int] = {}  # temp file -> how many writers hold it (always 1)
_pending_dirs: list[Path] = []  # output folders this process created and would remove
_previous: dict[int, Any] = {}  # signal -> handler before ours (only while ours is installed)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _lock:  # the portable way briefly sets it: keep other writers of this module out
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a newly created file gets from ``cp`` or ``open``: ``0o666 & ~umask``."""
    return 0o666 & ~_umask()


def is_partial_file(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temporary files."""
    return bool(_PARTIAL.match(name))


def partial_target(name: str | os.PathLike) -> str:
    """The file a temporary file of :func:`atomic_write` stands for (``dir/.net.pth.x1y2.tmp``
    -> ``dir/net.pth``): error messages name the user's path, never the hidden one. Any
    other name is returned as it is."""
    text = os.fspath(name)
    head, base = os.path.split(text)
    if not is_partial_file(base):
        return text
    return os.path.join(head, base[1:].rsplit(".", 2)[0])


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while a temporary file or folder is created and registered,
    so that one arriving at that very instant finds it registered (and removes it)."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:  # pragma: no cover - not POSIX
        yield
        return
    old = mask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)


def _no_space(folder: Path) -> bool:
    """Whether the filesystem holding ``folder`` is full (a writer that reports a failed
    write in its own words, e.g. torch.save's ``file write failed``, ran out of space)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def _writable_ancestor(path: Path, label: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder this process may write."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{label}: not a directory ({parent} "
                                         "is a file)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, f"{label}: permission denied (cannot "
                                      f"write in {parent})")
            return


def check_output_file(path: str | os.PathLike | None, flag: str = "") -> None:
    """Refuse, before any compute, an output file that cannot be written: an existing folder,
    a path under a regular file, a folder this process may not write in. Writes nothing."""
    if path is None:
        return
    p = Path(path)
    label = f"{flag} {p}" if flag else str(p)
    if p.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{label}: is a directory (give a file name)")
    _writable_ancestor(p, label)


def check_output_dir(path: str | os.PathLike | None, flag: str = "") -> None:
    """Refuse, before any compute, an output folder that cannot be made or written: an
    existing file, a path under a regular file, a folder this process may not write in."""
    if path is None:
        return
    p = Path(path)
    label = f"{flag} {p}" if flag else str(p)
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{label}: not a directory (it is a file)")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, f"{label}: permission denied")
        return
    _writable_ancestor(p, label)


def _remove(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # best effort: a clean-up must never hide the error being reported
        pass


def _remove_dir_if_partial(path: Path) -> None:
    """Remove a folder this run created if it holds nothing but partial files."""
    try:
        entries = list(path.iterdir())
    except OSError:
        return
    if all(e.is_file() and is_partial_file(e.name) for e in entries):
        shutil.rmtree(path, ignore_errors=True)


def _clean_all() -> None:
    """Remove every pending temporary file and partial output folder (signal path)."""
    for tmp in list(_pending_files):
        _remove(tmp)
    _pending_files.clear()
    for folder in reversed(_pending_dirs):
        _remove_dir_if_partial(folder)
    _pending_dirs.clear()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _clean_all()
    previous = _previous.get(signum, signal.SIG_DFL)
    _restore_handlers()
    if callable(previous):
        previous(signum, frame)  # e.g. Python's SIGINT handler: raises KeyboardInterrupt
    elif previous == signal.SIG_IGN:
        return
    else:  # SIG_DFL (or unknown, set from C): die by the signal, the conventional status
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    if _previous or threading.current_thread() is not threading.main_thread():
        return  # already installed, or not possible here (only the main thread may)
    for sig in _SIGNALS:
        try:
            _previous[sig] = signal.signal(sig, _on_signal)
        except (ValueError, OSError):  # e.g. an embedded interpreter
            pass


def _restore_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_previous.items()):
        try:
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        except (ValueError, OSError, TypeError):
            pass
    _previous.clear()


def _register(file: str | None = None, folder: Path | None = None) -> None:
    with _lock:
        if file is not None:
            _pending_files[file] = 1
        if folder is not None:
            _pending_dirs.append(folder)
        _install_handlers()


def _unregister(file: str | None = None, folder: Path | None = None) -> None:
    with _lock:
        if file is not None:
            _pending_files.pop(file, None)
        if folder is not None and folder in _pending_dirs:
            _pending_dirs.remove(folder)
        if not _pending_files and not _pending_dirs:
            _restore_handlers()


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file onto ``path``.

    Nothing partial is ever left at ``path`` or next to it: on any exception, SIGINT or SIGTERM
    the temporary file is removed, and so are the parent folders this call created. The
    final file has mode ``0o666 & ~umask``. Errors name ``path``, not the temporary file; a
    writer that fails on a full filesystem in its own words raises ``OSError(ENOSPC)``.
    """
    path = Path(path)
    check_output_file(path)
    with output_dir(path.parent):
        with _signals_held():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            _register(file=tmp)
        try:
            os.close(fd)
            write(tmp)
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
        except OSError as exc:
            _remove(tmp)
            if exc.errno is not None and (exc.filename is None or is_partial_file(
                    os.path.basename(os.fspath(exc.filename)))):
                exc.filename = str(path)  # the user's path (a full disk's write names none)
            raise
        except RuntimeError as exc:  # torch.save's C++ writer reports a full disk in its own
            full = _no_space(path.parent)  # words ("iostream error", "unexpected pos")
            _remove(tmp)
            if full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
            raise
        except BaseException:
            _remove(tmp)
            raise
        finally:
            _unregister(file=tmp)


@contextmanager
def output_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Create ``path`` (and missing parents) for a run's outputs; on failure or interruption,
    remove what this call created if it holds nothing but partial files.

    A folder that existed before is never removed. ``SystemExit(0)`` counts as success.
    """
    path = Path(path)
    check_output_dir(path)
    created: list[Path] = []  # outermost first
    probe = path
    while not probe.exists() and not probe.is_symlink():
        created.insert(0, probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    with _signals_held():
        for folder in created:
            _register(folder=folder)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except BaseException:
            for folder in reversed(created):
                _remove_dir_if_partial(folder)
                _unregister(folder=folder)
            raise
    try:
        yield path
    except SystemExit as exc:
        if exc.code not in (0, None):
            for folder in reversed(created):
                _remove_dir_if_partial(folder)
        raise
    except BaseException:
        for folder in reversed(created):
            _remove_dir_if_partial(folder)
        raise
    finally:
        for folder in created:
            _unregister(folder=folder)
