"""Explicit hardware objects: an accelerator as a chain of storage levels above a MAC array.

Whatever spec format it was read from (Timeloop/Accelergy v0.3 or v0.4 YAML), an
:class:`Architecture` is the same thing: storage levels ordered from the outermost (DRAM)
inwards, each with its geometry, the data spaces it may keep, its own instance count and the
spatial fan-out to the level below, the compute unit at the bottom, and the dataflow
constraints that restrict how loops may be mapped.  Keeping the model on these small objects
(ZigZag-style) lets the analytical model and the mapper ignore YAML entirely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The data spaces of Timeloop's CNN layer.  Only a default for code that builds CNN
#: workloads: a spec names whatever data spaces its problem declares, and the names are
#: checked against the problem when the two are paired (:func:`hwmodel.spec.check_problem`).
DATA_SPACES = ("Weights", "Inputs", "Outputs")
#: In a keep/bypass list, every data space of the problem (timeloopfe's ``"*"``).
ALL_DATA_SPACES = "*"

#: Where something was written: (file, line); either may be unknown.
Origin = tuple[str | None, int | None]


@dataclass
class LoopConstraint:
    """Timeloop-style mapping constraint on one level's temporal or spatial loops.

    ``factors`` fixes loop bounds (``{"R": 3}``; a dim absent is free); ``max_factors``
    bounds them from above; ``permutation`` lists dims from the innermost loop outwards
    (Timeloop's string order), possibly only a prefix; for spatial loops ``split`` is the
    index in ``permutation`` where the dims mapped to X end and those mapped to Y begin.
    """

    factors: dict[str, int] = field(default_factory=dict)
    max_factors: dict[str, int] = field(default_factory=dict)
    permutation: list[str] | None = None
    split: int | None = None
    line: int | None = None
    #: where ``factors``, ``max_factors`` and ``permutation`` were written (their names are
    #: the problem's and are checked when spec and problem are paired)
    origins: dict[str, Origin] = field(default_factory=dict)


@dataclass
class Container:
    """A replicating container below a storage level (Timeloop's ``inter_<name>_spatial``).

    Its mesh is one stage of the level's fan-out; its spatial constraint restricts the
    loops of that stage only.  Mappers place loops per container and the model finds
    multicast per container, as Timeloop does.
    """

    name: str
    mesh_x: int = 1
    mesh_y: int = 1
    spatial: LoopConstraint | None = None


@dataclass
class StorageLevel:
    """One memory level (per instance figures; ``instances`` counts them all)."""

    name: str
    component_class: str
    attributes: dict[str, Any]
    depth: int | None            # rows; None = unbounded (DRAM)
    width: int                   # bits per row
    datawidth: int               # bits per word
    instances: int = 1
    mesh_x: int = 1              # arrangement of this level's instances
    mesh_y: int = 1
    fanout_x: int = 1            # child instances per instance of this level, along X
    fanout_y: int = 1            # ... and along Y
    n_banks: int = 1
    read_bandwidth: float | None = None    # words per cycle per instance
    write_bandwidth: float | None = None
    shared_bandwidth: float | None = None  # reads + writes together, where one port serves both
    keep: frozenset[str] | None = None      # None: the mapper decides
    bypass: frozenset[str] = frozenset()
    temporal: LoopConstraint | None = None
    spatial: LoopConstraint | None = None   # loops over this level's fan-out
    technology: str | None = None
    line: int | None = None
    #: the containers that make up the fan-out, outermost first (empty: one plain fan-out)
    containers: list[Container] = field(default_factory=list)
    #: where ``keep`` and ``bypass`` were written (checked against the problem's names)
    dataspace_origins: dict[str, Origin] = field(default_factory=dict)

    @property
    def cluster_size(self) -> int:
        """Instances that share one physical row (Timeloop's ``cluster_size``): a row of
        ``width`` bits is split among them."""
        try:
            return max(1, int(self.attributes.get("cluster_size", 1) or 1))
        except (TypeError, ValueError):
            return 1

    @property
    def block_size(self) -> int:
        """Words per row and instance (Timeloop's ``block-size``)."""
        return max(1, self.width // self.datawidth // self.cluster_size)

    @property
    def capacity_words(self) -> int | None:
        return None if self.depth is None else self.depth * self.block_size

    @property
    def fanout(self) -> int:
        return self.fanout_x * self.fanout_y

    def must_keep(self, data_space: str) -> bool:
        """Whether the spec's ``keep`` list names ``data_space`` (``*``: every one) and its
        ``bypass`` list does not."""
        return (self.keep is not None and (data_space in self.keep or ALL_DATA_SPACES in self.keep)
                and not self.must_bypass(data_space))

    def must_bypass(self, data_space: str) -> bool:
        return data_space in self.bypass or ALL_DATA_SPACES in self.bypass

    def may_keep(self, data_space: str) -> bool:
        if self.must_bypass(data_space):
            return False
        return self.keep is None or data_space in self.keep or ALL_DATA_SPACES in self.keep


@dataclass
class ComputeUnit:
    """The MAC (or multiplier/adder) at the bottom of the hierarchy."""

    name: str
    component_class: str
    attributes: dict[str, Any]
    instances: int
    datawidth: int = 8
    mesh_x: int = 1
    mesh_y: int = 1
    technology: str | None = None
    line: int | None = None


@dataclass
class Architecture:
    """Storage levels outermost first, then the compute unit."""

    name: str
    levels: list[StorageLevel]
    compute: ComputeUnit
    technology: str = "45nm"
    source: str | None = None
    version: str | None = None

    def level(self, name: str) -> StorageLevel:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(name)

    def index(self, name: str) -> int:
        for i, lv in enumerate(self.levels):
            if lv.name == name:
                return i
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [lv.name for lv in self.levels]
