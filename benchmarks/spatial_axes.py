"""How hwcost's mapper reads a spatial constraint, for the bridges that hand designs to other
mappers (ZigZag, AccelForge): the dims each axis of a fan-out stage may take."""

from __future__ import annotations

from hwmodel.arch import LoopConstraint


def axis_dims(constraint: LoopConstraint | None, dims: list[str],
              both_axes: bool) -> tuple[list[str], list[str]]:
    """Dims allowed along X and Y of one fan-out stage, as hwcost's mapper reads a spatial
    constraint (``permutation`` split at ``split``; a one-axis mesh takes any of them);
    dims the constraint fixes to 1 are left out."""
    if constraint is not None:
        dims = [d for d in dims if constraint.factors.get(d) != 1]
    if constraint is None or constraint.permutation is None:
        return list(dims), list(dims)
    perm = list(constraint.permutation)
    split = constraint.split if constraint.split is not None else len(perm)
    xs = [d for d in perm[:split] if d in dims]
    ys = [d for d in perm[split:] if d in dims]
    if not both_axes:
        union = xs + [d for d in ys if d not in xs]
        return union, union
    return xs, ys
