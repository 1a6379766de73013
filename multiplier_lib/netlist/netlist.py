"""Gate netlists of multipliers: structure, validation, bit-parallel simulation, toggles.

Every multiplier whose circuit is known carries a :class:`Netlist`, whether it was imported
from Verilog or generated.  Simulating it over all operand pairs gives the truth table (so a
LUT is never trusted blindly), and simulating it over an operand *stream* gives the switching
activity that the energy model needs.  Simulation is zero-delay (no glitches), one numpy
operation per gate over all samples at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from ..errors import NetlistError
from .cells import CELLS

CONST0 = 0
CONST1 = 1


@dataclass(frozen=True)
class Gate:
    """One cell instance: ``kind`` from :data:`CELLS`, nets in pin order."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    line: int | None = None
    name: str | None = None


class Netlist:
    """A combinational circuit with operand inputs ``A[i]``, ``B[j]`` and outputs ``O[k]``.

    Net 0 is constant 0, net 1 constant 1, then ``A[0..a_bits-1]``, ``B[0..b_bits-1]``, then
    internal nets.  ``outputs[k]`` is the net driving ``O[k]``.
    """

    def __init__(self, a_bits: int, b_bits: int, out_bits: int | None = None):
        if out_bits is None:
            out_bits = a_bits + b_bits
        self.a_bits = a_bits
        self.b_bits = b_bits
        self.net_names: list[str] = ["1'b0", "1'b1"]
        self.net_names += [f"A[{i}]" for i in range(a_bits)]
        self.net_names += [f"B[{j}]" for j in range(b_bits)]
        self.gates: list[Gate] = []
        self.outputs: list[int | None] = [None] * out_bits
        self._ordered = False

    # ----------------------------------------------------------------- construction
    @property
    def out_bits(self) -> int:
        return len(self.outputs)

    @property
    def n_nets(self) -> int:
        return len(self.net_names)

    def a(self, i: int) -> int:
        return 2 + i

    def b(self, j: int) -> int:
        return 2 + self.a_bits + j

    def is_primary(self, net: int) -> bool:
        return net < 2 + self.a_bits + self.b_bits

    def new_net(self, name: str | None = None) -> int:
        self.net_names.append(name if name is not None else f"n{len(self.net_names)}")
        return len(self.net_names) - 1

    def add_gate(self, kind: str, inputs: Sequence[int], outputs: Sequence[int],
                 line: int | None = None, name: str | None = None) -> None:
        cell = CELLS.get(kind)
        if cell is None:
            raise NetlistError(f"unknown cell kind {kind!r}", line=line)
        if len(inputs) != len(cell.inputs) or len(outputs) != len(cell.outputs):
            raise NetlistError(
                f"{kind} takes {len(cell.inputs)} input(s) and {len(cell.outputs)} output(s), "
                f"got {len(inputs)} and {len(outputs)}", line=line)
        self.gates.append(Gate(kind, tuple(inputs), tuple(outputs), line, name))
        self._ordered = False

    def add(self, kind: str, *inputs: int) -> int | tuple[int, ...]:
        """Add a gate driving fresh nets; return its output net (or nets for HA/FA)."""
        outs = tuple(self.new_net() for _ in CELLS[kind].outputs)
        self.add_gate(kind, inputs, outs)
        return outs[0] if len(outs) == 1 else outs

    def set_output(self, k: int, net: int) -> None:
        self.outputs[k] = net

    # ----------------------------------------------------------------- validation
    def validate(self) -> Netlist:
        """Check the structure and put the gates in topological order.

        Raises :class:`NetlistError` naming the gate's source line for: a net driven twice,
        an input or constant driven by a gate, a net read but never driven, an undriven output
        bit, or a combinational loop.
        """
        driver: dict[int, Gate] = {}
        for g in self.gates:
            for o in g.outputs:
                if self.is_primary(o):
                    raise NetlistError(f"gate drives {self.net_names[o]}, which is an input "
                                       "or a constant", line=g.line)
                if o in driver:
                    first = driver[o].line
                    also = f" (first driven at line {first})" if first is not None else ""
                    raise NetlistError(f"net {self.net_names[o]} is driven twice{also}",
                                       line=g.line)
                driver[o] = g
        for g in self.gates:
            for i in g.inputs:
                if not self.is_primary(i) and i not in driver:
                    raise NetlistError(f"net {self.net_names[i]} is read but never driven",
                                       line=g.line)
        for k, net in enumerate(self.outputs):
            if net is None:
                raise NetlistError(f"output bit O[{k}] is never assigned")
            if not self.is_primary(net) and net not in driver:
                raise NetlistError(f"output O[{k}] reads net {self.net_names[net]}, "
                                   "which is never driven")
        graph = nx.DiGraph()
        graph.add_nodes_from(range(len(self.gates)))
        index = {id(g): n for n, g in enumerate(self.gates)}
        for n, g in enumerate(self.gates):
            for i in g.inputs:
                if i in driver:
                    graph.add_edge(index[id(driver[i])], n)
        try:
            order = list(nx.lexicographical_topological_sort(graph))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(graph)
            g = self.gates[cycle[0][0]]
            nets = " -> ".join(self.net_names[self.gates[u].outputs[0]] for u, _ in cycle)
            raise NetlistError(f"combinational loop through {nets}", line=g.line) from None
        self.gates = [self.gates[n] for n in order]
        self._ordered = True
        return self

    def pruned(self) -> Netlist:
        """A copy without gates whose outputs reach no output bit (what synthesis removes)."""
        self._ensure_ordered()
        live = {n for n in self.outputs if n is not None}
        keep: list[Gate] = []
        for g in reversed(self.gates):
            if any(o in live for o in g.outputs):
                keep.append(g)
                live.update(g.inputs)
        copy = Netlist(self.a_bits, self.b_bits, self.out_bits)
        copy.net_names = list(self.net_names)
        copy.gates = keep[::-1]
        copy.outputs = list(self.outputs)
        copy._ordered = True
        return copy

    def _ensure_ordered(self) -> None:
        if not self._ordered:
            self.validate()

    # ----------------------------------------------------------------- simulation
    def net_values(self, a_codes: np.ndarray, b_codes: np.ndarray) -> list[np.ndarray]:
        """The 0/1 value of every net for each operand pair (zero-delay simulation)."""
        self._ensure_ordered()
        a_codes = np.asarray(a_codes, dtype=np.int64)
        b_codes = np.asarray(b_codes, dtype=np.int64)
        n = a_codes.shape[0]
        values: list[np.ndarray | None] = [None] * self.n_nets
        values[CONST0] = np.zeros(n, dtype=np.uint8)
        values[CONST1] = np.ones(n, dtype=np.uint8)
        for i in range(self.a_bits):
            values[self.a(i)] = ((a_codes >> i) & 1).astype(np.uint8)
        for j in range(self.b_bits):
            values[self.b(j)] = ((b_codes >> j) & 1).astype(np.uint8)
        for g in self.gates:
            outs = CELLS[g.kind].evaluate(*(values[i] for i in g.inputs))
            for net, v in zip(g.outputs, outs):
                values[net] = v
        zeros = values[CONST0]
        return [v if v is not None else zeros for v in values]

    def simulate(self, a_codes: np.ndarray, b_codes: np.ndarray) -> np.ndarray:
        """The raw (unsigned) output bit pattern for each operand pair, as int64."""
        values = self.net_values(a_codes, b_codes)
        out = np.zeros(len(values[0]), dtype=np.int64)
        for k, net in enumerate(self.outputs):
            out |= values[net].astype(np.int64) << k
        return out

    def truth_table(self) -> np.ndarray:
        """Raw output patterns for all pairs, shape ``(2**a_bits, 2**b_bits)``."""
        a, b = np.meshgrid(np.arange(1 << self.a_bits), np.arange(1 << self.b_bits),
                           indexing="ij")
        return self.simulate(a.ravel(), b.ravel()).reshape(a.shape)

    def toggle_counts(self, a_stream: np.ndarray, b_stream: np.ndarray) -> np.ndarray:
        """How many times each net changes value along an operand stream (one per cycle)."""
        values = self.net_values(a_stream, b_stream)
        return np.array([np.count_nonzero(v[1:] != v[:-1]) for v in values], dtype=np.int64)

    # ----------------------------------------------------------------- summaries
    def gate_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(g.kind for g in self.gates).items()))

    def driver_of(self) -> dict[int, Gate]:
        return {o: g for g in self.gates for o in g.outputs}

    # ----------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {
            "a_bits": self.a_bits, "b_bits": self.b_bits,
            "nets": self.net_names,
            "gates": [[g.kind, list(g.inputs), list(g.outputs)] for g in self.gates],
            "outputs": list(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Netlist:
        nl = cls(int(data["a_bits"]), int(data["b_bits"]), len(data["outputs"]))
        nl.net_names = list(data["nets"])
        for kind, ins, outs in data["gates"]:
            nl.add_gate(kind, ins, outs)
        nl.outputs = [None if o is None else int(o) for o in data["outputs"]]
        return nl.validate()

    def __repr__(self) -> str:
        return (f"Netlist({self.a_bits}x{self.b_bits}->{self.out_bits}, "
                f"{len(self.gates)} gates)")


