"""The differentiable energy term of the DARTS search loss.

The op energy table (:mod:`darts.op_energy`) prices every (cell type, edge, op, multiplier)
of the search network once; the search loss uses the expectation of ``E`` under the
softmaxed weights, a cheap, differentiable tensor expression:

    expected = fixed_pj + sum_type sum_edge sum_op softmax(alpha)[edge, op]
                          * sum_mult softmax(beta)[edge, mult] * E[type, edge, op, mult]

and :func:`energy_penalty` adds it to the cross-entropy in one of three forms.
"""

from __future__ import annotations

import math

import torch

from core.errors import HwcostError
from darts.op_energy import OpEnergyTable

PENALTY_KINDS = ("additive", "fbnet", "target")


def table_tensor(table: OpEnergyTable) -> torch.Tensor:
    """The table as a float64 tensor of ``table.shape`` (built once, then kept with it)."""
    tensor = table.cache.get("tensor")
    if tensor is None:
        tensor = table.cache["tensor"] = torch.tensor(table.energy_pj, dtype=torch.float64)
    return tensor


def _check_weights(name: str, w: torch.Tensor, shape: tuple[int, int]) -> None:
    if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape:
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise HwcostError(f"{name} must be a tensor of shape {shape}, got {got}")


def expected_energy(table: OpEnergyTable, alpha_normal: torch.Tensor,
                    alpha_reduce: torch.Tensor, beta_normal: torch.Tensor | None = None,
                    beta_reduce: torch.Tensor | None = None, *,
                    multiplier_index: int = 0) -> torch.Tensor:
    """Expected network energy (pJ) under softmaxed op (and multiplier) weights.

    Alphas are ``(n_edges, n_ops)`` logits; betas ``(n_edges, n_multipliers)`` logits, or
    ``None`` to fix every edge to multiplier ``multiplier_index`` (the baseline, 0, unless
    told).  Give both betas or neither: half a multiplier search has no meaning.  The result
    has the alphas' dtype and device so it adds to the loss without promotion, and is
    differentiable with respect to every weight given.
    """
    _, n_e, n_o, n_m = table.shape
    _check_weights("alpha_normal", alpha_normal, (n_e, n_o))
    _check_weights("alpha_reduce", alpha_reduce, (n_e, n_o))
    E = table_tensor(table).to(device=alpha_normal.device, dtype=alpha_normal.dtype)
    if (beta_normal is None) != (beta_reduce is None):
        raise HwcostError("give both beta_normal and beta_reduce, or neither")
    if beta_normal is None:
        if not -n_m <= multiplier_index < n_m:
            raise HwcostError(f"multiplier_index {multiplier_index} out of range for "
                              f"{n_m} multipliers {list(table.multipliers)}")
        per_op = E[..., multiplier_index]  # (2, n_e, n_o)
    else:
        _check_weights("beta_normal", beta_normal, (n_e, n_m))
        _check_weights("beta_reduce", beta_reduce, (n_e, n_m))
        betas = torch.stack([torch.softmax(beta_normal, -1), torch.softmax(beta_reduce, -1)])
        per_op = (E * betas.to(E.dtype).unsqueeze(2)).sum(-1)
    alphas = torch.stack([torch.softmax(alpha_normal, -1), torch.softmax(alpha_reduce, -1)])
    return (alphas * per_op).sum() + table.fixed_pj


def _positive(name: str, value: float | torch.Tensor) -> float:
    v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not v > 0 or math.isinf(v):
        raise HwcostError(f"{name} must be a positive finite number, got {v}")
    return v


def energy_penalty(ce_loss: torch.Tensor, expected: torch.Tensor,
                   reference: float | torch.Tensor, kind: str = "additive",
                   weight: float = 1.0, target: float | None = None,
                   beta_exp: float = 0.6) -> torch.Tensor:
    """The search loss with an energy term; ``expected`` from :func:`expected_energy`.

    * ``additive``: ``ce + weight * expected / reference``.  Dividing by ``reference`` (the
      table's uniform-alpha energy) makes ``weight`` mean the same on any network/accelerator.
    * ``fbnet``: ``ce * weight * (log(expected) / log(reference)) ** beta_exp``, FBNet's
      ``CE * a * log(LAT) ** b`` with energy for latency, the log normalised by the log of the
      reference so the factor is ``weight`` at the reference energy (independent of the pJ
      unit's scale).  Needs ``expected`` and ``reference`` above 1 pJ (positive logs).
    * ``target``: ``ce + weight * relu(expected / target - 1)``, a hinge that only penalises
      energy above ``target`` pJ, for a budget rather than a trade-off.

    ``weight`` (and ``beta_exp`` for fbnet) must be positive; ``reference`` is ignored by
    ``target``.  Bad arguments raise :class:`HwcostError` rather than silently training
    against a NaN or sign-flipped penalty.
    """
    if kind not in PENALTY_KINDS:
        raise HwcostError(f"unknown energy penalty kind {kind!r}; choose one of "
                          f"{', '.join(PENALTY_KINDS)}")
    _positive("weight", weight)
    if kind == "additive":
        return ce_loss + weight * expected / _positive("reference", reference)
    if kind == "fbnet":
        _positive("beta_exp", beta_exp)
        ref = _positive("reference", reference)
        if ref <= 1.0:
            raise HwcostError(f"fbnet penalty needs reference > 1 pJ (log > 0), got {ref}")
        if _positive("expected energy", expected) <= 1.0:
            raise HwcostError("fbnet penalty needs expected energy > 1 pJ (log > 0)")
        return ce_loss * weight * (torch.log(expected) / math.log(ref)) ** beta_exp
    if target is None:
        raise HwcostError("energy penalty kind 'target' needs a target energy (pJ)")
    t = _positive("target", target)
    return ce_loss + weight * torch.relu(expected / t - 1.0)
