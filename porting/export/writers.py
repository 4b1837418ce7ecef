"""Writers: the ONNX and TorchScript files, each checked (:class:`ParityCheck`) while still a
temporary file and renamed into place only when the check passes."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from porting.checkpoint import sha256_file
from porting.export.nets import Spec
from porting.export.parity import ParityCheck, ParityError, quietly
from porting.export.rewrite import set_im2col
from porting.outputs import atomic_write

DEFAULT_OPSET = 17
MIN_OPSET = 13  # ReduceSum with axes as an input


def max_opset() -> int:
    """The newest opset the TorchScript-based exporter writes."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
        return int(ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except ImportError:  # pragma: no cover - older torch
        return 17


def _dynamic_axes(spec: Spec) -> dict[str, dict[int, str]]:
    return {n: {0: "batch"} for n in spec.input_names + spec.output_names}


def _onnx_bytes(spec: Spec, example: Sequence[torch.Tensor], opset: int) -> bytes:
    set_im2col(spec.net, False)
    buf = io.BytesIO()
    quietly(lambda: torch.onnx.export(
        spec.net, tuple(example), buf, dynamo=False, opset_version=opset,
        input_names=spec.input_names, output_names=spec.output_names,
        dynamic_axes=_dynamic_axes(spec), do_constant_folding=True))
    return buf.getvalue()


def _run_onnx(model: Any, spec: Spec, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    import onnx
    from onnx.reference import ReferenceEvaluator

    onnx.checker.check_model(model, full_check=True)
    feeds = {n: t.numpy() for n, t in zip(spec.input_names, inputs, strict=True)}
    return ReferenceEvaluator(model).run(None, feeds)


def export_onnx(spec: Spec, example: Sequence[torch.Tensor], check: ParityCheck,
                out: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Trace ``spec.net`` on ``example`` (batch 1), run the model through
    :func:`onnx.checker.check_model` and :class:`onnx.reference.ReferenceEvaluator` on the
    check batches, and write ``out`` atomically if :class:`ParityCheck` passes (raises
    :class:`ParityError` otherwise). Returns the check report."""
    import onnx

    proto = onnx.load_from_string(_onnx_bytes(spec, example, opset))
    proto.doc_string = "reid-porting export: " + json.dumps(spec.info, sort_keys=True)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()
    got64 = None
    if check.fp64_graph:
        ex64 = [e.double() for e in example]
        proto64 = onnx.load_from_string(_onnx_bytes(check.spec64, ex64, opset))
        got64 = _run_onnx(proto64, check.spec64, check.check64)
    report: dict[str, Any] = {}

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)
        model = onnx.load(tmp)
        report.update(check.report("onnx.reference.ReferenceEvaluator",
                                   _run_onnx(model, spec, check.check), got64))
        report["ops"] = sorted({n.op_type for n in model.graph.node})
        if not report["passed"]:
            raise ParityError(report)

    atomic_write(out, write)
    report["sha256"] = hashlib.sha256(data).hexdigest()
    return report


def export_torchscript(spec: Spec, example: Sequence[torch.Tensor], check: ParityCheck,
                       out: str | os.PathLike, *, extra: dict[str, str] | None = None,
                       ) -> dict[str, Any]:
    """``torch.jit.trace`` on ``example`` (batch 1), save, ``torch.jit.load``, run the check
    batches; written atomically only if :class:`ParityCheck` passes."""
    set_im2col(spec.net, True)
    traced = quietly(lambda: torch.jit.trace(spec.net, tuple(example), check_trace=False))
    got64 = None
    if check.fp64_graph:  # the rewritten module that was traced, in float64
        set_im2col(check.spec64.net, True)
        got64 = _as_tuple(quietly(lambda: check.spec64.net(*check.check64)))
    report: dict[str, Any] = {}

    buffer = io.BytesIO()  # serialised in memory: a full disk is then an OSError of ours,
    quietly(lambda: torch.jit.save(traced, buffer, _extra_files=extra or {}))  # not abort()
    data = buffer.getvalue()

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)
        loaded = quietly(lambda: torch.jit.load(tmp, map_location="cpu"))
        with torch.jit.optimized_execution(False):  # one run: skip the JIT's fusion passes
            got = _as_tuple(quietly(lambda: loaded(*check.check)))
        report.update(check.report("torch.jit.load", got, got64))
        if not report["passed"]:
            raise ParityError(report)

    atomic_write(out, write)
    report["sha256"] = sha256_file(out)
    return report


def _as_tuple(y: Any) -> tuple[Any, ...]:
    return y if isinstance(y, tuple) else (y,)


