"""``reid-porting``: one command, a subcommand per application.

``reid-porting VERB ...`` runs ``VERB``'s ``main``; every verb is also ``python -m
porting.<module>`` (see :data:`COMMANDS`), and the names users know (``convert-matconvnet``,
``convert-caffe``, ``validate``) stay standalone commands. No installed command shadows a
shell builtin or a common Unix tool (``export``, ``compare`` and ``train`` are subcommands
only). Each verb's ``--help`` ends with the examples of :data:`EXAMPLES`, which the test
suite runs.

Exit status, the same for every verb: 0 success, 1 a check failed (parity, ``--check``, a
training run whose loss became NaN/Inf), 2 bad input or usage (also a path that cannot be read
or written, a full disk, a device that is not there), 130 / 143 interrupted by SIGINT /
SIGTERM (one line each, nothing partial left; :mod:`porting.boundary`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str  # has main(argv) -> int
    summary: str


COMMANDS: dict[str, Command] = {
    "convert-matconvnet": Command("porting.converters.matconvnet",
                                  "a MatConvNet .mat (DagNN, net-epoch-N, SimpleNN) to a "
                                  "checkpoint"),
    "convert-caffe": Command("porting.converters.caffe",
                             "a Caffe prototxt + caffemodel to a checkpoint"),
    "compare": Command("porting.converters.compare",
                       "a checkpoint against a dump of the source framework, var by var"),
    "dump-tools": Command("porting.converters.dump",
                          "the MatConvNet (MATLAB/Octave) and pycaffe tools that dump for compare"),
    "validate": Command("porting.validation.cli",
                        "the authors' extraction, the official evaluation, published figures"),
    "train": Command("porting.train.cli", "the paper's two-stream training recipe"),
    "export": Command("porting.export.cli", "a verified ONNX / TorchScript file"),
    "convert-checkpoint": Command("porting.convert_checkpoint",
                                  "a checkpoint between .pth and .safetensors, both ways"),
    "make-mini-market": Command("porting.validation.mini",
                                "a mini Market-1501 (13 real crops + generated images)"),
}

#: Example command lines per verb, shown at the end of its ``--help`` and run by the tests
#: (on the bundled narrow models, under the file names a user of the released models has).
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "make-mini-market": (
        ("the mini Market-1501 of the demo and the tests: 13 real crops + 40 generated images",
         "reid-porting make-mini-market market_mini"),
        ("a bigger one, drawn with another seed",
         "reid-porting make-mini-market market_mini_200 --generated 200 --seed 1"),
    ),
    "convert-matconvnet": (
        ("the paper's released two-stream ResNet-50 (cnn_train_dag's net-epoch-N.mat)",
         "reid-porting convert-matconvnet net-epoch-75.mat -o net-epoch-75.pth"),
        ("keep the converted graph only (no mapping onto porting.models)",
         "reid-porting convert-matconvnet net-epoch-75.mat -o graph.pth --arch none -q"),
    ),
    "convert-caffe": (
        ("Kaiming He's ResNet-50 deploy net, BGR input as in Caffe",
         "reid-porting convert-caffe deploy.prototxt weights.caffemodel -o resnet50.pth"),
        ("the same net taking RGB input (conv1's input channels flipped)",
         "reid-porting convert-caffe deploy.prototxt weights.caffemodel -o resnet50_rgb.pth "
         "--rgb"),
    ),
    "compare": (
        ("where a converted net diverges from MatConvNet's own outputs, var by var",
         "reid-porting compare net-epoch-75.pth net-epoch-75_outputs.npz"),
        ("the same with a stricter bound and a JSON report",
         "reid-porting compare net-epoch-75.pth net-epoch-75_outputs.npz --rtol 1e-5 "
         "--json compare.json"),
        ("a Caffe conversion against its own prototxt + caffemodel run by OpenCV's dnn",
         "reid-porting compare resnet50.pth --opencv"),
    ),
    "dump-tools": (
        ("copy the MATLAB/Octave function and the pycaffe script into a folder",
         "reid-porting dump-tools dump_tools"),
        ("the folder they are installed in (for MATLAB's addpath)",
         "reid-porting dump-tools --print-path"),
    ),
    "train": (
        ("a smoke run of the authors' MatConvNet recipe: one epoch, ResNet-50 at 1/32 width",
         "reid-porting train Market-1501-v15.09.15 -o runs/resnet50 --epochs 1 "
         "--trunk-kwargs '{\"width\": 2}' --batch-size 4 --eval-split none -q"),
        ("D-X-Y's Caffe recipe, two iterations of a narrow CaffeNet, safetensors checkpoints",
         "reid-porting train Market-1501-v15.09.15 -o runs/caffenet --arch caffenet "
         "--recipe caffe-dxy --holdout none --max-iter 2 --batch-size 4 "
         "--trunk-kwargs '{\"widths\": [8, 16, 16, 16, 16], \"fc_width\": 32}' -q "
         "--checkpoint-format safetensors"),
    ),
    "convert-checkpoint": (
        ("the converted net as safetensors (no pickle; readable from any framework)",
         "reid-porting convert-checkpoint net-epoch-75.pth net-epoch-75.safetensors"),
        ("and back to torch.save's format",
         "reid-porting convert-checkpoint net-epoch-75.safetensors net-epoch-75_back.pth -q"),
    ),
    "export": (
        ("the test-time descriptor of the converted net, checked before it is written",
         "reid-porting export net-epoch-75.pth --onnx reid.onnx"),
        ("the two-stream net (two image batches -> the three logit maps) as TorchScript",
         "reid-porting export net-epoch-75.pth --what siamese --torchscript siamese.pt "
         "--size 224 224"),
    ),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; shows a flag's default where its help does not."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text.lower() or action.default in (None, False, argparse.SUPPRESS)
                or action.option_strings == []):
            return text
        return f"{text} (default: %(default)s)"


def examples_epilog(verb: str) -> str:
    """The ``examples:`` block that ends ``verb``'s ``--help``."""
    lines = ["examples:"]
    for comment, command in EXAMPLES.get(verb, ()):
        lines += [f"  # {comment}", f"  {command}"]
    lines += ["", "exit status: 0 success, 1 a check failed, 2 bad input or usage, 130/143 "
              "interrupted (SIGINT/SIGTERM)"]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting",
        description="Faithful PyTorch ports of the MatConvNet/Caffe re-ID models of Zheng, "
                    "Zheng & Yang (TOMM 2017). 'reid-porting VERB --help' for each verb.",
        epilog="verbs:\n" + "\n".join(f"  {v:<19} {c.summary}" for v, c in COMMANDS.items())
               + "\n\n" + examples_epilog("convert-matconvnet").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("verb", choices=list(COMMANDS), metavar="VERB",
                   help="one of: " + ", ".join(COMMANDS))
    p.add_argument("args", nargs=argparse.REMAINDER, help="the verb's arguments")
    p.add_argument("--version", action="version", version=_version())
    return p


def _version() -> str:
    from porting import __version__

    return f"reid-porting {__version__}"


def run_verb(verb: str, argv: Sequence[str]) -> int:
    """``verb``'s ``main(argv)``; its exit status. The shared error boundary
    (:mod:`porting.boundary`) also covers the verb's import (Ctrl-C while torch loads)."""
    from porting.boundary import run_cli

    def call(args: list[str] | None) -> int:
        main = importlib.import_module(COMMANDS[verb].module).main
        return int(main(list(args or [])) or 0)

    return run_cli(call, list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    return run_verb(args.verb, args.args)


def entry() -> None:
    """The ``reid-porting`` console script."""
    sys.exit(main())


def convert_matconvnet() -> None:
    """The standalone ``convert-matconvnet`` console script."""
    sys.exit(run_verb("convert-matconvnet", sys.argv[1:]))


def convert_caffe() -> None:
    """The standalone ``convert-caffe`` console script."""
    sys.exit(run_verb("convert-caffe", sys.argv[1:]))


def validate() -> None:
    """The standalone ``validate`` console script."""
    sys.exit(run_verb("validate", sys.argv[1:]))


if __name__ == "__main__":  # pragma: no cover
    entry()
