"""Workloads: the loop nest of one layer, in Timeloop's terms.

A workload is a perfect loop nest over named dimensions with bounds, plus the data spaces it
touches: each data space axis is an affine sum of dimensions (``h = Hstride*p + Hdilation*r``).
This is exactly Timeloop's problem ``shape`` + ``instance``, so any problem Timeloop can
describe (the conv1d toys of its tutorials included) can be modelled.  :class:`Layer` is the
network-level view (a conv, FC, pooling or element-wise layer) that turns into a workload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

#: Data space names used by convolution-like workloads (Timeloop's CNN-layer names).
WEIGHTS, INPUTS, OUTPUTS = "Weights", "Inputs", "Outputs"
CONV_DIMS = ("N", "G", "C", "M", "P", "Q", "R", "S")


@dataclass(frozen=True)
class DataSpace:
    """One tensor of the workload.

    ``projection[k]`` is the k-th axis of the tensor as a sum of ``(coefficient, dim)``
    terms; ``read_write`` marks the output (partial sums are read, updated and written back).
    """

    name: str
    projection: tuple[tuple[tuple[int, str], ...], ...]
    read_write: bool = False

    def dims(self) -> frozenset[str]:
        return _projection_dims(self.projection)

    def relevant(self, dim: str) -> bool:
        return dim in _projection_dims(self.projection)


@lru_cache(maxsize=4096)
def _projection_dims(projection: tuple) -> frozenset[str]:
    """The dims a projection uses (cached: the model asks for every loop it counts)."""
    return frozenset(d for axis in projection for _, d in axis)


@dataclass(frozen=True)
class Workload:
    """A loop nest: ordered ``dims`` with bounds and the data spaces it reads and writes."""

    name: str
    dims: tuple[tuple[str, int], ...]
    data_spaces: tuple[DataSpace, ...]

    @property
    def bounds(self) -> dict[str, int]:
        return dict(self.dims)

    @property
    def dim_names(self) -> tuple[str, ...]:
        return tuple(d for d, _ in self.dims)

    @property
    def computes(self) -> int:
        return math.prod(b for _, b in self.dims)

    def data_space(self, name: str) -> DataSpace:
        for ds in self.data_spaces:
            if ds.name == name:
                return ds
        raise KeyError(name)

    def size(self, ds: DataSpace, tile: dict[str, int] | None = None) -> int:
        """Number of distinct points of ``ds`` touched when each dim ranges over ``tile``."""
        return footprint(ds, tile if tile is not None else self.bounds)

    def key(self) -> tuple:
        """Hashable shape key, used to cache mappings of identical layers."""
        return (self.dims, self.data_spaces)


def axis_points(axis: tuple[tuple[int, str], ...], tile: dict[str, int]) -> int:
    """Distinct values of ``sum coef*idx`` with each ``idx`` in ``range(tile[dim])``.

    A strided window (``stride*p + dilation*r``) touches a contiguous range when the stride
    does not exceed the window's reach; otherwise it has gaps, which Timeloop does not count
    as data either, so the points are counted run by run (:func:`axis_runs`).
    """
    return points(tuple((c, tile.get(d, 1)) for c, d in axis if tile.get(d, 1) > 1 and c))


def points(terms: tuple[tuple[int, int], ...]) -> int:
    """Distinct values of ``sum c*i`` over terms ``(c, n)`` (``i`` in ``range(n)``)."""
    return _points(tuple(sorted(terms)))


@lru_cache(maxsize=65536)
def _points(terms: tuple[tuple[int, int], ...]) -> int:
    if not terms:
        return 1
    if len(terms) == 1:
        return terms[0][1]
    if len(terms) == 2:
        (c1, n1), (c2, n2) = terms  # c1 <= c2
        if c1 == c2:
            return n1 + n2 - 1
        if c1 == 1 and c2 <= n1:
            return c2 * (n2 - 1) + n1
    _step, runs = axis_runs(terms)
    return sum(hi - lo for intervals in runs.values() for lo, hi in intervals)


def window_work(terms: tuple[tuple[int, int], ...]) -> int:
    """Steps :func:`axis_runs` takes for ``terms`` ``(coef, extent)``: the product of every
    extent but the largest (a sliding window's positions, ``R`` for ``P + R``)."""
    extents = sorted(n for _c, n in terms)
    return math.prod(extents[:-1]) if extents else 1


@lru_cache(maxsize=65536)
def axis_runs(terms: tuple[tuple[int, int], ...]
              ) -> tuple[int, dict[int, tuple[tuple[int, int], ...]]]:
    """The values ``sum c*i`` (each ``i`` in ``range(n)``) of ``terms`` ``(c, n)`` as runs.

    Returns ``(step, runs)``: the value set is ``{r + step*m}`` for every residue ``r`` in
    ``runs`` and every ``m`` in one of its merged half-open intervals ``[lo, hi)``.  The
    term with the largest extent forms the intervals and the others are enumerated, so the
    cost is :func:`window_work` (a window ``R``), not the set's size (``P*R``): enumerating
    the set itself hangs on large problems.
    """
    big = max(range(len(terms)), key=lambda k: abs(terms[k][1]))
    c_big, n_big = terms[big]
    step = abs(c_big)
    rest = [t for k, t in enumerate(terms) if k != big]
    bases = [min(0, c_big * (n_big - 1))]      # a negative coefficient runs downwards
    for c, n in rest:
        bases = [b + c * i for b in bases for i in range(n)]
    grouped: dict[int, list[tuple[int, int]]] = {}
    for b in bases:
        q, r = divmod(b, step)
        grouped.setdefault(r, []).append((q, q + n_big))
    runs = {}
    for r, intervals in grouped.items():
        intervals.sort()
        merged = [list(intervals[0])]
        for lo, hi in intervals[1:]:
            if lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        runs[r] = tuple((lo, hi) for lo, hi in merged)
    return step, runs


def axis_overlap(terms: tuple[tuple[int, int], ...], shift: int) -> int:
    """``|S & (S + shift)|`` for the value set S of :func:`axis_runs` (a sliding window's
    reuse), by intersecting runs instead of sets."""
    if not terms:
        return 1 if shift == 0 else 0
    step, runs = axis_runs(terms)
    total = 0
    for r, intervals in runs.items():
        q, r2 = divmod(r + shift, step)
        other = runs.get(r2)
        if other is None:
            continue
        total += _intersection(tuple((lo + q, hi + q) for lo, hi in intervals), other)
    return total


def _intersection(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> int:
    """Length of the intersection of two sorted lists of disjoint half-open intervals."""
    i = j = total = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def footprint(ds: DataSpace, tile: dict[str, int]) -> int:
    """Distinct points of ``ds`` touched by a tile (a hot path of the mapper)."""
    total = 1
    for axis in ds.projection:
        if len(axis) == 1:
            total *= tile.get(axis[0][1], 1)  # c*i over range(n): n points
        else:
            total *= axis_points(axis, tile)
    return total


#: tiles remembered per data space and compiled footprint (a few MB at most)
_FOOTPRINT_MEMO = 65_536


def compiled_footprint(ds, dims: tuple[str, ...]):
    """:func:`footprint` of ``ds`` as a function of a tile tuple (in ``dims`` order): the
    mappers screen thousands of candidate tiles per layer."""
    index = {d: k for k, d in enumerate(dims)}
    singles = [index[axis[0][1]] for axis in ds.projection if len(axis) == 1]
    multis = [tuple((c, index[d]) for c, d in axis if c) for axis in ds.projection
              if len(axis) > 1]

    if not multis:
        def fp(tile: tuple[int, ...]) -> int:
            total = 1
            for k in singles:
                total *= tile[k]
            return total

        return fp
    # sliding windows: the same tiles recur across nodes and plans, so remember them
    memo: dict[tuple[int, ...], int] = {}

    def fp_window(tile: tuple[int, ...]) -> int:
        total = memo.get(tile)
        if total is None:
            total = 1
            for k in singles:
                total *= tile[k]
            for axis in multis:
                total *= points(tuple((c, tile[k]) for c, k in axis if tile[k] > 1))
            if len(memo) < _FOOTPRINT_MEMO:
                memo[tile] = total
        return total

    return fp_window


def conv_data_spaces(stride: tuple[int, int] = (1, 1),
                     dilation: tuple[int, int] = (1, 1)) -> tuple[DataSpace, ...]:
    """Weights[G,C,M,R,S], Inputs[N,G,C,H,W], Outputs[N,G,M,P,Q] of a (grouped) conv."""
    sh, sw = stride
    dh, dw = dilation
    return (
        DataSpace(WEIGHTS, (((1, "G"),), ((1, "C"),), ((1, "M"),), ((1, "R"),), ((1, "S"),))),
        DataSpace(INPUTS, (((1, "N"),), ((1, "G"),), ((1, "C"),),
                           ((sh, "P"), (dh, "R")), ((sw, "Q"), (dw, "S")))),
        DataSpace(OUTPUTS, (((1, "N"),), ((1, "G"),), ((1, "M"),), ((1, "P"),), ((1, "Q"),)),
                  read_write=True),
    )


@dataclass(frozen=True)
class Layer:
    """A network layer in Timeloop conv terms.

    ``kind`` is ``conv`` (also depthwise/grouped via ``groups``), ``fc`` (a conv with
    P=Q=R=S=1), ``pool`` or ``eltwise``.  C and M are channels *per group*; the layer's
    input channels are ``groups*C`` and its output channels ``groups*M``.  Pooling and
    element-wise layers have no multiplications: they cost memory traffic and adds.
    """

    name: str
    kind: str
    N: int = 1
    C: int = 1
    M: int = 1
    P: int = 1
    Q: int = 1
    R: int = 1
    S: int = 1
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    multiplier: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def macs(self) -> int:
        if self.kind not in ("conv", "fc"):
            return 0
        return self.N * self.groups * self.C * self.M * self.P * self.Q * self.R * self.S

    @property
    def params(self) -> int:
        """Weight count (no bias) of a conv/FC layer."""
        if self.kind not in ("conv", "fc"):
            return 0
        return self.groups * self.C * self.M * self.R * self.S

    @property
    def in_hw(self) -> tuple[int, int]:
        h = (self.P - 1) * self.stride[0] + (self.R - 1) * self.dilation[0] + 1
        w = (self.Q - 1) * self.stride[1] + (self.S - 1) * self.dilation[1] + 1
        return h, w

    def workload(self) -> Workload:
        dims = (("N", self.N), ("G", self.groups), ("C", self.C), ("M", self.M),
                ("P", self.P), ("Q", self.Q), ("R", self.R), ("S", self.S))
        return Workload(self.name, dims, conv_data_spaces(self.stride, self.dilation))

    def shape_text(self) -> str:
        g = f" g{self.groups}" if self.groups > 1 else ""
        s = f" s{self.stride[0]}" if self.stride != (1, 1) else ""
        d = f" d{self.dilation[0]}" if self.dilation != (1, 1) else ""
        return (f"N{self.N} C{self.C} M{self.M} P{self.P} Q{self.Q} R{self.R} S{self.S}"
                f"{g}{s}{d}")
