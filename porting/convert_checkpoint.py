"""``reid-porting convert-checkpoint IN OUT``: a checkpoint from one format to the other.

``.pth`` (``torch.save``'s zip, read with ``weights_only=True``) and ``.safetensors`` (tensors as
they are, every other field as JSON metadata) hold the same checkpoint; the output's format
follows its suffix. The input is read and its schema checked as ``porting.load`` does, the
output written atomically and read back: the same fields and the same tensor bits, or nothing is
left at OUT.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import torch

from porting.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from porting.checkpoint_safetensors import is_safetensors_path
from porting.cli import HelpFormatter, examples_epilog
from porting.outputs import atomic_write


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting convert-checkpoint",
        description="A reid-porting checkpoint from one format to the other: .pth (torch.save, "
                    "read with weights_only=True) or .safetensors (the tensors as they are, "
                    "every other field as JSON metadata). OUT's suffix chooses the format; the "
                    "input's schema is checked as porting.load does, and OUT is read back and "
                    "compared, bit for bit, before it is renamed into place.",
        formatter_class=HelpFormatter,
        epilog=examples_epilog("convert-checkpoint"))
    p.add_argument("input", help="a reid-porting checkpoint (.pth or .safetensors)")
    p.add_argument("output", help="the file to write: .safetensors, or .pth for torch.save's "
                                  "format")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="convert a checkpoint whose weights hold NaN or Inf (refused by "
                        "default)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().view(-1).view(torch.uint8)


def same(a: Any, b: Any) -> bool:
    """Whether two checkpoint values are equal, tensors bit for bit (and dtype)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(_bits(a), _bits(b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN
    return type(a) is type(b) and a == b


def run(args: argparse.Namespace) -> int:
    if args.input == args.output:
        raise CheckpointError(f"{args.output}: the output must be another file than the input")
    ckpt = load_checkpoint(args.input, allow_nonfinite=args.allow_nonfinite)

    def write(tmp: str) -> None:  # read back before it is renamed onto the output
        save_checkpoint(tmp, ckpt, safetensors=is_safetensors_path(args.output))
        if not same(ckpt, read_checkpoint(tmp)):
            raise CheckpointError(f"{args.output}: the written checkpoint does not read back "
                                  "identical to the input; nothing written")

    atomic_write(args.output, write)
    if not args.quiet:
        kind = "safetensors" if is_safetensors_path(args.output) else "torch.save (.pth)"
        n = sum(t.numel() for t in ckpt["state_dict"].values())
        print(f"convert-checkpoint: wrote {args.output} ({kind}, {len(ckpt['state_dict'])} "
              f"tensors, {n} values)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return run(args)
    except CheckpointError as exc:
        print(f"convert-checkpoint: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a field the safetensors form cannot hold
        print(f"convert-checkpoint: {args.input}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
