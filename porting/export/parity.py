"""The check an exported file must pass before it is written.

Float32 results differ by CPU, instruction set, oneDNN path and thread count, so a fixed
float32 bound tuned on one machine is the wrong test. Every output is measured against a
**float64 run of the same model**: the file passes when its float32 error against that run is
within ``max(tolerance, C * e)``, ``e`` being PyTorch's own float32 error against it
(:data:`C` = 2: the file may be as inaccurate as PyTorch is, with room for the rounding of a
second, different float32 evaluation). Unless disabled, the exported graph itself is also
built and run in float64 and must agree with PyTorch's float64 result to
:data:`FP64_TOLERANCE`: free of float32 rounding, that shows any approximation in the export
(a wrong divisor, eps added twice, a shifted LRN window) even where float32 noise hides it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from porting.export.nets import Spec

TOLERANCE = 1e-5
FP64_TOLERANCE = 1e-10  # the exported graph in float64 vs PyTorch in float64
#: How many times PyTorch's own float32 error (against float64) the file may have.
C = 2.0


def max_rel_err(ours: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray) -> float:
    """``max|ours - ref| / max|ref|`` (the measure every issue reports)."""
    a = np.asarray(ours.detach().cpu() if isinstance(ours, torch.Tensor) else ours, np.float64)
    b = np.asarray(ref.detach().cpu() if isinstance(ref, torch.Tensor) else ref, np.float64)
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return math.inf
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def quietly(fn: Callable[[], Any]) -> Any:
    """Run a trace/save/load without the exporters' deprecation and tracer warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            return fn()


class ParityCheck:
    """What an exported file is checked against, and the pass rule (module docstring).

    ``check`` (float32; batch 2 exercises the dynamic batch axis of a file traced with batch
    1) runs through the file, through the unmodified PyTorch model in float32, and through a
    float64 copy of it. Per output the report holds ``fp32`` (file vs PyTorch float32),
    ``file_fp32_vs_fp64``, ``pytorch_fp32_vs_fp64``, ``bound`` and, with ``fp64_graph``,
    ``fp64`` (the exported graph in float64 vs PyTorch in float64).

    ``double(rewrite)`` builds the float64 export (see :func:`porting.export.nets.double_export`):
    with ``rewrite=True`` for ``fp64_graph``, else ``rewrite=False`` for the reference alone.
    """

    def __init__(self, spec: Spec, check: Sequence[torch.Tensor],
                 double: Callable[[bool], Spec], tolerance: float = TOLERANCE,
                 fp64_graph: bool = True) -> None:
        self.spec, self.tolerance = spec, tolerance
        self.fp64_graph = fp64_graph
        self.spec64 = double(True) if fp64_graph else None
        spec64 = self.spec64 if self.spec64 is not None else double(False)
        self.check = [c.float().contiguous() for c in check]
        self.check64 = [c.double() for c in self.check]
        self.ref = quietly(lambda: spec.reference(*self.check))
        self.ref64 = quietly(lambda: spec64.reference(*self.check64))

    def report(self, runner: str, got: Sequence[Any], got64: Sequence[Any] | None,
               ) -> dict[str, Any]:
        per: dict[str, dict[str, float]] = {}
        passed, limited = True, []
        for i, n in enumerate(self.spec.output_names):
            row = {"fp32": max_rel_err(got[i], self.ref[i]),
                   "file_fp32_vs_fp64": max_rel_err(got[i], self.ref64[i]),
                   "pytorch_fp32_vs_fp64": max_rel_err(self.ref[i], self.ref64[i])}
            row["bound"] = max(self.tolerance, C * row["pytorch_fp32_vs_fp64"])
            ok = row["file_fp32_vs_fp64"] <= row["bound"]
            if got64 is not None:
                row["fp64"] = max_rel_err(got64[i], self.ref64[i])
                ok &= row["fp64"] <= FP64_TOLERANCE
            if ok and row["file_fp32_vs_fp64"] > self.tolerance:
                limited.append(n)  # passes only because PyTorch itself is that far off
            passed &= ok
            per[n] = row
        out: dict[str, Any] = {
            "runner": runner, "batch": int(self.check[0].shape[0]),
            "max_rel_err": max(r["fp32"] for r in per.values()),
            "max_file_fp32_vs_fp64": max(r["file_fp32_vs_fp64"] for r in per.values()),
            "max_pytorch_fp32_vs_fp64": max(r["pytorch_fp32_vs_fp64"] for r in per.values()),
            "tolerance": self.tolerance, "c": C, "per_output": per, "passed": bool(passed),
            "conditioning_limited": limited,
        }
        if got64 is not None:
            out["max_rel_err_fp64"] = max(r["fp64"] for r in per.values())
            out["fp64_tolerance"] = FP64_TOLERANCE
        return out


def describe_row(name: str, row: dict[str, float]) -> str:
    """One output's three numbers (and the float64 graph's), as the report prints them."""
    text = (f"{name}: file vs float64 {row['file_fp32_vs_fp64']:.3g} (bound "
            f"{row['bound']:.3g}), PyTorch float32 vs float64 {row['pytorch_fp32_vs_fp64']:.3g}"
            f", file vs PyTorch float32 {row['fp32']:.3g}")
    if "fp64" in row:
        text += f", float64 graph {row['fp64']:.3g}"
    return text


class ParityError(RuntimeError):
    """The exported file does not reproduce PyTorch (nothing was written)."""

    def __init__(self, report: dict[str, Any]) -> None:
        rows = "; ".join(describe_row(k, v) for k, v in report["per_output"].items())
        super().__init__(f"{report['runner']} vs PyTorch: {rows} (tolerance "
                         f"{report['tolerance']:g}, c {C:g}, float64 graph "
                         f"{FP64_TOLERANCE:g})")
        self.report = report
