"""How faithful is the rank-``r`` low-rank surrogate (:mod:`.backends.lowrank`) to a LUT?

Two views, because they answer different questions:

* :func:`energy_captured` -- share of the error table's squared Frobenius norm kept by the
  first ``r`` singular values.  Cheap, input-independent, monotone in ``r``; it says how much
  of the multiplier's *error structure* the surrogate reproduces.
* :func:`relative_output_error` -- on small random convolution layers, the share of the
  *approximation error* (table output minus exact-product output) that the surrogate fails
  to reproduce.  0 means the surrogate emulates the approximate multiplier perfectly, 1 means
  it is no better than an exact multiplier.  This is what matters for accuracy studies: the
  error, not the product, is what the approximate multiplier contributes.

:func:`fidelity` bundles both plus the error relative to the whole output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import HwcostError
from ..multiplier import Multiplier
from .backends import lowrank, reference

#: Shape of the random probe layers: small so a full fidelity check takes well under a second.
_PROBE_N, _PROBE_C, _PROBE_HW, _PROBE_M, _PROBE_K = 2, 8, 8, 8, 3


@dataclass(frozen=True)
class Fidelity:
    """Fidelity of one rank-``rank`` surrogate.

    ``energy_captured``: in [0, 1], 1 is perfect.  ``error_left``: share of the approximation
    error not reproduced (0 is perfect; 0 also when the LUT is exact).  ``output_rel_error``:
    ``||surrogate - reference|| / ||reference||`` over the probe outputs.
    """

    rank: int
    energy_captured: float
    error_left: float
    output_rel_error: float

    def as_dict(self) -> dict[str, float | int]:
        return {"rank": self.rank, "energy_captured": self.energy_captured,
                "error_left": self.error_left, "output_rel_error": self.output_rel_error}


LutLike = Multiplier | torch.Tensor | np.ndarray


def _table(lut: LutLike) -> torch.Tensor:
    table = lut.lut if isinstance(lut, Multiplier) else lut
    return torch.as_tensor(np.asarray(table)) if isinstance(table, np.ndarray) else table


def _factorize(lut: LutLike, rank: int, signed: bool | None) -> lowrank.LowRank:
    if isinstance(lut, Multiplier) and signed is None:
        signed = lut.signed
    return lowrank.factorize(_table(lut), rank, signed)


def energy_captured(lut: LutLike, rank: int, signed: bool | None = None) -> float:
    """Share of ``||E||_F**2`` in the first ``rank`` singular values (1.0 for an exact LUT)."""
    lr = _factorize(lut, rank, signed)
    s2 = lr.singular_values.square()
    total = float(s2.sum())
    if total == 0.0:
        return 1.0
    return min(1.0, float(s2[:lr.rank].sum()) / total)


def _ratio(num: float, den: float) -> float:
    """``num / den`` where ``0 / 0`` is 0 (nothing to reproduce, nothing missed)."""
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def _output_errors(lut: torch.Tensor, lr: lowrank.LowRank, trials: int,
                   seed: int) -> tuple[float, float]:
    """``(error_left, output_rel_error)`` summed over ``trials`` random probe layers."""
    if trials < 1:
        raise HwcostError(f"fidelity needs at least one trial, got {trials}")
    gen = torch.Generator().manual_seed(seed)
    a_codes, b_codes = lr.shape
    lut32 = lut.detach().to("cpu", torch.int32)
    exact = lr.with_rank(0)
    miss = approx = total = 0.0
    for _ in range(trials):
        x = torch.randint(0, a_codes, (_PROBE_N, _PROBE_C, _PROBE_HW, _PROBE_HW),
                          generator=gen).to(torch.uint8)
        w = torch.randint(0, b_codes, (_PROBE_M, _PROBE_C, _PROBE_K, _PROBE_K),
                          generator=gen).to(torch.uint8)
        ref = reference.conv2d_lut(x, w, lut32).to(torch.float64)
        sur = lowrank.conv2d_lut(x, w, lr).to(torch.float64)
        prod = lowrank.conv2d_lowrank_float(x, w, exact)
        miss += float((sur - ref).square().sum())
        approx += float((ref - prod).square().sum())
        total += float(ref.square().sum())
    return _ratio(miss**0.5, approx**0.5), _ratio(miss**0.5, total**0.5)


def relative_output_error(lut: LutLike, rank: int, trials: int = 8, seed: int = 0,
                          signed: bool | None = None) -> float:
    """Share of the approximation error the rank-``rank`` surrogate leaves on random convs:
    ``||surrogate - reference|| / ||reference - exact_product||`` (0 is perfect)."""
    return _output_errors(_table(lut), _factorize(lut, rank, signed), trials, seed)[0]


def fidelity(mult_or_lut: LutLike, rank: int, trials: int = 8, seed: int = 0,
             signed: bool | None = None) -> Fidelity:
    """All fidelity figures of the rank-``rank`` surrogate of a multiplier or bare LUT."""
    lr = _factorize(mult_or_lut, rank, signed)
    left, rel = _output_errors(_table(mult_or_lut), lr, trials, seed)
    return Fidelity(rank=lr.rank, energy_captured=energy_captured(mult_or_lut, rank, signed),
                    error_left=left, output_rel_error=rel)
