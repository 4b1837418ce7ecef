"""Shared test helpers: fixture paths and the relative-error measure of the issues."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def rel_err(ours: np.ndarray | torch.Tensor, ref: np.ndarray) -> float:
    """``max|ours - ref| / max|ref|`` over one tensor (the measure every issue reports)."""
    if isinstance(ours, torch.Tensor):
        ours = ours.detach().cpu().numpy()
    ours = np.asarray(ours, dtype=np.float64).reshape(np.shape(ref))
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
