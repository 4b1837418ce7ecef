"""The command-line error boundary every verb shares: what the outside world does to a command
becomes one line in the user's terms and the README's exit status, never a traceback.

* bad input or usage (the project's errors are ``ValueError`` subclasses naming the file and
  the layer, var or field), a missing, unreadable or wrong kind of path, a full disk, a device
  that is not there: ``error: ...``, exit 2;
* SIGINT: ``interrupted``, exit 130; SIGTERM: ``terminated``, exit 143 (128 + the signal, as
  a shell reports a process killed by it). SIGTERM is raised as :class:`Terminated` while
  the verb runs, so that every clean-up (:mod:`porting.outputs`' temporary files, a run's
  output folder) happens as it does for Ctrl-C.

Output paths are checked before any compute (:func:`check_output_file`,
:func:`check_output_dir`): a run of hours must not end in ``Permission denied``.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from porting.outputs import check_output_dir, check_output_file, partial_target

__all__ = ["Terminated", "run_cli", "error_line", "check_output_file", "check_output_dir",
           "require_dir", "require_file", "resolve_device"]

EXIT_BAD_INPUT = 2


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like ``KeyboardInterrupt`` for SIGINT."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):  # pragma: no cover - embedded interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def error_line(exc: BaseException) -> str:
    """One line for an error: an ``OSError`` names the user's path (never a temporary
    file) and says what is wrong with it; any other error its first line."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        name = exc.filename
        if name is None:
            return reason
        name = partial_target(name)
        if exc.errno == errno.ENOENT:
            kind = path_kind(name)
            if kind:
                reason = kind
        return f"{name}: {reason}"
    text = str(exc).strip()
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + text if text else ''}"
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__


def path_kind(path: str | os.PathLike) -> str | None:
    """What is wrong with a path that was expected to exist: ``no such file or directory``
    or ``not a directory (X is a file)`` when a parent is a regular file; None if it
    exists."""
    p = Path(path)
    if p.exists():
        return None
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"not a directory ({parent} is a file)"
            break
    return "no such file or directory"


def require_dir(path: str | os.PathLike, what: str = "") -> Path:
    """``path`` as an existing folder, else ``NotADirectoryError``/``FileNotFoundError``
    naming it (``--root model.pth`` is "not a directory", not "does not exist")."""
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    if p.is_dir():
        return p
    if p.exists():
        raise NotADirectoryError(errno.ENOTDIR, f"{label}: not a directory")
    raise FileNotFoundError(errno.ENOENT, f"{label}: {path_kind(p)}")


def require_file(path: str | os.PathLike, what: str = "") -> Path:
    """``path`` as an existing regular file, else ``IsADirectoryError``/``FileNotFoundError``
    naming it."""
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    if p.is_file():
        return p
    if p.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{label}: is a directory, not a file")
    raise FileNotFoundError(errno.ENOENT, f"{label}: {path_kind(p)}")


def resolve_device(text: str | None, flag: str = "--device") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda[:N]`` only where there is
    such a device (one line otherwise, before any model is built)."""
    import torch

    name = (text or "auto").strip()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"{flag} {name}: not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{flag} {name}: no CUDA device here (torch.cuda.is_available() "
                             "is False); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{flag} {name}: there are {torch.cuda.device_count()} CUDA "
                             "device(s)")
    elif device.type != "cpu":
        raise ValueError(f"{flag} {name}: not supported (auto, cpu, cuda or cuda:N)")
    return name


def _fail(message: str) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_cli(main: Callable[[list[str] | None], int | None], argv: Sequence[str] | None = None,
            *, collect_warnings: bool = False,
            also: tuple[type[BaseException], ...] = ()) -> int:
    """Run a verb's body inside the boundary; its exit status.

    ``collect_warnings``: warnings raised while reading (scipy, h5py, protobuf, the readers'
    own) are printed as one ``warning:`` line each after a success, never with their source
    line; after an error only the error line is printed (the converters). ``also``: the
    verb's own further error types reported the same way.
    """
    argv = None if argv is None else list(argv)
    with _sigterm_raises(), warnings.catch_warnings(record=collect_warnings) as caught:
        if collect_warnings:
            warnings.simplefilter("always")
        try:
            rc = int(main(argv) or 0)
        except KeyboardInterrupt:
            print("interrupted (SIGINT)", file=sys.stderr)
            return 128 + signal.SIGINT
        except Terminated:
            print("terminated (SIGTERM)", file=sys.stderr)
            return 128 + signal.SIGTERM
        except (OSError, ValueError, MemoryError, *also) as exc:
            return _fail(error_line(exc))
    seen: set[str] = set()
    for w in caught or ():
        text = " ".join(str(w.message).split())
        if text not in seen:
            seen.add(text)
            print(f"warning: {text}", file=sys.stderr)
    return rc
