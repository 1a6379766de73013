"""Error metrics of approximate multipliers, as EvoApprox defines them, optionally weighted.

All metrics are computed over every operand pair with ``err = approx - exact``.  With no
distribution the pairs are uniform (the EvoApprox convention, so figures match its headers);
real activations and weights are far from uniform, so a joint distribution over operand codes
(or two independent 1-D ones) can weight every metric instead.  Percentages normalise by the
output range ``2**(a_bits + b_bits)``, the EvoApprox convention for MAE% and WCE%.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import HwcostError
from core.untrusted import read_npy_file

from .multiplier import Multiplier


@dataclass(frozen=True)
class ErrorMetrics:
    mae: float
    mae_pct: float
    wce: float
    wce_pct: float
    wcre_pct: float
    mre_pct: float
    ep_pct: float
    mse: float
    bias: float
    error_std: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def joint_distribution(mult: Multiplier, a_dist: np.ndarray | None = None,
                       b_dist: np.ndarray | None = None,
                       joint: np.ndarray | None = None) -> np.ndarray | None:
    """Probability of every operand pair, or None for uniform.

    ``a_dist``/``b_dist`` are per-code histograms of the A (activation) and B (weight)
    operands; ``joint`` a 2-D histogram over (a, b).  Histograms need not be normalised.
    """
    if joint is not None:
        if a_dist is not None or b_dist is not None:
            raise HwcostError("give either a joint histogram or 1-D histograms, not both")
        return _normalised(joint)
    if a_dist is None and b_dist is None:
        return None
    pa = np.ones(1 << mult.a_bits) if a_dist is None else _normalised(a_dist)
    pb = np.ones(1 << mult.b_bits) if b_dist is None else _normalised(b_dist)
    return _normalised(np.multiply.outer(pa, pb))


def _normalised(counts: np.ndarray) -> np.ndarray:
    """``counts / counts.sum()``, scaled by the maximum first: counts near the float range
    (``1e308``) would overflow the sum to ``inf`` and turn every probability into 0 or NaN."""
    p = np.asarray(counts, dtype=np.float64)
    p = p / p.max()
    return p / p.sum()


def error_metrics(mult: Multiplier, weights: np.ndarray | None = None) -> ErrorMetrics:
    """Metrics of ``mult`` over all pairs, uniform or weighted by ``weights`` (sums to 1)."""
    err = mult.error_table().astype(np.float64)
    exact = mult.exact().astype(np.float64)
    scale = float(1 << (mult.a_bits + mult.b_bits))
    p = np.full(err.shape, 1.0 / err.size) if weights is None else weights
    support = p > 0
    abs_err = np.abs(err)
    mae = float((p * abs_err).sum())
    bias = float((p * err).sum())
    mse = float((p * err * err).sum())
    wce = float(abs_err[support].max()) if support.any() else 0.0
    ep = float(p[err != 0].sum())
    nonzero = (exact != 0) & support
    if nonzero.any():
        rel = abs_err[nonzero] / np.abs(exact[nonzero])
        pn = p[nonzero] / p[nonzero].sum()
        mre = float((pn * rel).sum())
        wcre = float(rel.max())
    else:
        mre = wcre = 0.0
    var = max(mse - bias * bias, 0.0)
    return ErrorMetrics(
        mae=mae, mae_pct=mae / scale * 100, wce=wce, wce_pct=wce / scale * 100,
        wcre_pct=wcre * 100, mre_pct=mre * 100, ep_pct=ep * 100, mse=mse, bias=bias,
        error_std=float(np.sqrt(var)))


def load_histogram(path: str | Path, length: int | None = None,
                   shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an operand histogram ``.npy`` (1-D per code, or 2-D joint) and check it.

    The header is checked before the data is read: a histogram claiming 10**9 bins is
    refused without allocating them.
    """
    want = (length,) if length is not None else shape
    if not os.path.lexists(path):
        raise HwcostError("histogram file not found", file=path)

    def check(found: tuple[int, ...], dtype: np.dtype) -> str | None:
        if dtype.fields is not None or dtype.kind not in "iuf":
            return f"histogram must hold real numbers, got dtype {dtype}"
        if want is not None and found != want:
            if length is not None:
                return (f"expected a 1-D histogram of {length} entries (one per operand "
                        f"code), got shape {found}")
            return f"expected a 2-D joint histogram of shape {shape}, got {found}"
        return None

    data = read_npy_file(path, check).astype(np.float64)
    if not np.isfinite(data).all() or (data < 0).any():
        raise HwcostError("histogram entries must be finite and non-negative", file=path)
    if data.size == 0 or data.max() <= 0:  # not sum(): 1e308 counts would overflow it
        raise HwcostError("histogram does not sum to a positive value", file=path)
    return data
