"""DARTS genotypes: the derived architecture of a cell network, and its structural rules.

A genotype names, for each of the two cell types (``normal`` and ``reduce``), the op on each
edge and the node it reads from, plus which nodes the cell concatenates into its output.
Node ids follow DARTS: 0 and 1 are the cell inputs (the outputs of the two previous cells,
after preprocessing); intermediate node ``k`` (0-based) has id ``k + 2`` and may read from any
of the nodes ``0 .. k + 1``.  Edges are listed two per intermediate node, in node order.

Optional annotations for the cost model: a network-wide ``multiplier``, a multiplier per
edge (``normal_multipliers``/``reduce_multipliers``, ``None`` falling back to
``multiplier``) and the evaluation network's hyper-parameters (:data:`NETWORK_KEYS`).

Reading and writing genotype files (JSON and the DARTS ``Genotype(...)`` text) is
:mod:`darts.genotype_io`'s job; :func:`validate` checks the rules here and names the line of
the entry at fault when the reader hands it the lines (``line_of``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from core.errors import HwcostError
from darts.macro import CELL_TYPES, MAX_CELL_NODES, NETWORK_LIMITS
from darts.op_specs import OP_SPECS

#: The DARTS search space, in DARTS's order (index = position of the op's architecture weight):
#: the ops :mod:`darts.op_specs` describes.
PRIMITIVES = list(OP_SPECS)

#: Network hyper-parameters a genotype may carry (CLI options override them).
NETWORK_KEYS = ("layers", "channels", "input_size", "classes")

#: Where an entry is: a path of keys and indices, ``('normal', 3)``, ``('network', 'layers')``.
EntryPath = tuple[str | int, ...]
#: The line of an entry in the file a genotype was read from (``None``: unknown).
LineOf = Callable[..., int | None]


@dataclass
class Genotype:
    """One derived DARTS architecture plus the optional cost-model annotations.

    ``source`` (the file it came from) is kept for error messages only and does not take part
    in equality, so the JSON and text forms of one genotype compare equal.
    """

    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]
    multiplier: str | None = None
    normal_multipliers: list[str | None] | None = None
    reduce_multipliers: list[str | None] | None = None
    layers: int | None = None
    channels: int | None = None
    input_size: int | None = None
    classes: int | None = None
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Edges as tuples and concat as lists whatever the caller passed (JSON gives lists,
        # DARTS code tuples and ranges), so that equal genotypes compare equal.
        self.normal = [tuple(e) if isinstance(e, list) else e for e in self.normal]
        self.reduce = [tuple(e) if isinstance(e, list) else e for e in self.reduce]
        self.normal_concat = list(self.normal_concat)
        self.reduce_concat = list(self.reduce_concat)

    def edges(self, cell: str) -> list[tuple[str, int]]:
        """The ``(op, input)`` edges of ``cell`` (``'normal'`` or ``'reduce'``)."""
        return self.normal if _cell(cell) == "normal" else self.reduce

    def concat(self, cell: str) -> list[int]:
        return self.normal_concat if _cell(cell) == "normal" else self.reduce_concat

    def steps(self, cell: str) -> int:
        """Number of intermediate nodes of ``cell``."""
        return len(self.edges(cell)) // 2

    def edge_multipliers(self, cell: str) -> list[str | None]:
        """The multiplier of each edge of ``cell``: its own, else the network-level one."""
        own = self.normal_multipliers if _cell(cell) == "normal" else self.reduce_multipliers
        edges = self.edges(cell)
        if own is None:
            return [self.multiplier] * len(edges)
        return [m if m is not None else self.multiplier for m in own]

    def with_multiplier(self, name: str | None) -> Genotype:
        """This genotype with ``name`` on every edge and layer (per-edge choices dropped);
        every other field, the network hyper-parameters included, is kept."""
        return replace(self, multiplier=name, normal_multipliers=None, reduce_multipliers=None)

    @property
    def network(self) -> dict[str, int]:
        """The network hyper-parameters this genotype sets (unset ones are left out)."""
        return {k: getattr(self, k) for k in NETWORK_KEYS if getattr(self, k) is not None}


def _cell(cell: str) -> str:
    if cell not in CELL_TYPES:
        raise ValueError(f"cell type must be 'normal' or 'reduce', not {cell!r}")
    return cell


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the choices close to ``word``, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def validate(genotype: Genotype, *, allow_none: bool = False,
             line_of: LineOf | None = None) -> None:
    """Check the structural rules of a DARTS cell; raises :class:`HwcostError` naming the
    first problem (with ``genotype.source`` and, given ``line_of``, the line of the entry).

    ``allow_none`` admits ``none`` edges (a pruned, not-yet-derived cell); DARTS's derivation
    never keeps them, so a derived genotype with one is almost certainly a mistake.
    ``line_of(*path)`` gives the line of the entry at ``path`` (:data:`EntryPath`) in the file
    the genotype was read from (:mod:`darts.genotype_io` passes it).
    """
    at: LineOf = line_of if line_of is not None else _no_line
    source = genotype.source

    def fail(message: str, *path: str | int) -> HwcostError:
        return HwcostError(message, file=source, line=at(*path))

    for cell in CELL_TYPES:
        edges = genotype.edges(cell)
        if not edges:
            raise fail(f"{cell!r} has no edges; a cell needs at least one intermediate node "
                       "(2 edges)", cell)
        if len(edges) % 2:
            raise fail(f"{cell!r} has {len(edges)} edges, an odd number; DARTS lists exactly "
                       "2 edges per intermediate node", cell)
        MAX_CELL_NODES.check(len(edges) // 2, file=source, line=at(cell),
                             context=f"{cell!r} cell")
        for e, edge in enumerate(edges):
            k = e // 2
            if (not isinstance(edge, tuple) or len(edge) != 2 or not isinstance(edge[0], str)
                    or type(edge[1]) is not int):
                raise fail(f"{cell} edge {e} must be (op, input node), not {edge!r}", cell, e)
            op, index = edge
            if op not in PRIMITIVES:
                raise fail(f"unknown op {op!r} on {cell} edge {e}{suggest(op, PRIMITIVES)}; "
                           f"DARTS ops: {', '.join(PRIMITIVES)}", cell, e)
            if op == "none" and not allow_none:
                raise fail(f"op 'none' on {cell} edge {e}: DARTS never derives 'none' (it is "
                           "excluded when picking each node's two strongest inputs)", cell, e)
            if not 0 <= index <= k + 1:
                raise fail(f"{cell} edge {e} reads node {index}, but node {k + 2} (intermediate "
                           f"node {k}) may only read nodes 0..{k + 1}", cell, e)
        for k in range(len(edges) // 2):
            if edges[2 * k][0] == "none" and edges[2 * k + 1][0] == "none":
                raise fail(f"{cell} node {k + 2} (intermediate node {k}) has no inputs: both "
                           "of its edges are 'none'", cell, 2 * k)

        key = f"{cell}_concat"
        concat = genotype.concat(cell)
        last = len(edges) // 2 + 1
        if not concat:
            raise fail(f"{key!r} is empty; the cell output needs at least one node", key)
        seen: set[int] = set()
        for i, node in enumerate(concat):
            if not 2 <= node <= last:
                raise fail(f"{key} entry {node} is out of range: the {cell} cell's intermediate "
                           f"nodes are 2..{last}", key, i)
            if node in seen:
                raise fail(f"{key} lists node {node} twice", key, i)
            seen.add(node)

        key = f"{cell}_multipliers"
        per_edge = genotype.normal_multipliers if cell == "normal" else genotype.reduce_multipliers
        if per_edge is not None and len(per_edge) != len(edges):
            raise fail(f"{key!r} has {len(per_edge)} entries but the {cell} cell has "
                       f"{len(edges)} edges (one multiplier name or null per edge)", key)

    for key in NETWORK_KEYS:
        value = getattr(genotype, key)
        if value is not None and (type(value) is not int or value < 1):
            raise fail(f"network {key} must be a positive integer, not {value!r}",
                       "network", key)
        if value is not None and key in NETWORK_LIMITS:
            NETWORK_LIMITS[key].check(value, file=source, line=at("network", key),
                                      context=f"network {key}")


def _no_line(*path: str | int) -> None:
    return None

