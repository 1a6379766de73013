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

import numpy as np

from core.limits import Limit

from ..errors import NetlistError
from .cells import CELLS

CONST0 = 0
CONST1 = 1

#: The largest real 8x8 multipliers (EvoApprox exact designs, our generators) have a few
#: hundred gates; 20,000 leaves two orders of magnitude of headroom while keeping import
#: (networkx ordering) and characterization (simulation over 100,000 operand pairs) to
#: seconds.  Enforced by the Verilog importer while parsing and on library entries.
MAX_GATES = Limit("HWCOST_MAX_GATES", 20_000, "gates in a netlist")
#: Net *bits*: gate outputs, ``assign`` aliases and declared bus bits.  A netlist has about
#: one or two per gate; this bounds what a few lines (``wire [10**6:0] N; assign N = ...``)
#: can make the importer expand.
MAX_NETS = Limit("HWCOST_MAX_NETS", 100_000, "net bits in a netlist")
#: Operand pairs simulated at once: memory is O(nets x chunk), not O(nets x pairs).
SIM_CHUNK = 4096


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
        import networkx as nx  # deferred: commands that never parse a netlist skip it

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
        """The raw (unsigned) output bit pattern for each operand pair, as int64.

        Simulated :data:`SIM_CHUNK` pairs at a time, so memory does not grow with
        gates x pairs (20,000 gates over 65,536 pairs would otherwise hold 1.3 GB).
        """
        a_codes = np.asarray(a_codes, dtype=np.int64)
        b_codes = np.asarray(b_codes, dtype=np.int64)
        out = np.zeros(a_codes.shape[0], dtype=np.int64)
        for start in range(0, a_codes.shape[0], SIM_CHUNK):
            stop = start + SIM_CHUNK
            values = self.net_values(a_codes[start:stop], b_codes[start:stop])
            for k, net in enumerate(self.outputs):
                out[start:stop] |= values[net].astype(np.int64) << k
        return out

    def truth_table(self) -> np.ndarray:
        """Raw output patterns for all pairs, shape ``(2**a_bits, 2**b_bits)``."""
        a, b = np.meshgrid(np.arange(1 << self.a_bits), np.arange(1 << self.b_bits),
                           indexing="ij")
        return self.simulate(a.ravel(), b.ravel()).reshape(a.shape)

    def toggle_counts(self, a_stream: np.ndarray, b_stream: np.ndarray) -> np.ndarray:
        """How many times each net changes value along an operand stream (one per cycle).

        Chunked like :meth:`simulate`; consecutive chunks overlap by one pair so that the
        transition between them is counted exactly once.
        """
        a_stream = np.asarray(a_stream, dtype=np.int64)
        b_stream = np.asarray(b_stream, dtype=np.int64)
        counts = np.zeros(self.n_nets, dtype=np.int64)
        n = a_stream.shape[0]
        for start in range(0, max(n - 1, 1), SIM_CHUNK):
            stop = start + SIM_CHUNK + 1
            values = self.net_values(a_stream[start:stop], b_stream[start:stop])
            counts += [np.count_nonzero(v[1:] != v[:-1]) for v in values]
        return counts

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
        """The netlist :meth:`to_dict` wrote, every field checked (a stored netlist may have
        been damaged or written by another tool): types, net indices, sizes, structure."""
        if not isinstance(data, dict):
            raise NetlistError(f"netlist: expected a JSON object, found {type(data).__name__}")
        a_bits = _int_field(data, "a_bits", 1, 64)
        b_bits = _int_field(data, "b_bits", 1, 64)
        nets, gates, outputs = (data.get(k) for k in ("nets", "gates", "outputs"))
        if not isinstance(nets, list) or not all(isinstance(n, str) for n in nets):
            raise NetlistError("netlist: 'nets' must be a list of net names")
        if not isinstance(gates, list) or not isinstance(outputs, list) or not outputs:
            raise NetlistError("netlist: 'gates' and 'outputs' must be lists")
        MAX_NETS.check(len(nets), context="netlist")
        MAX_GATES.check(len(gates), context="netlist")
        nl = cls(a_bits, b_bits, len(outputs))
        if len(nets) < nl.n_nets:
            raise NetlistError(f"netlist: {len(nets)} nets cannot hold the constants and "
                               f"{a_bits}+{b_bits} operand bits")
        nl.net_names = list(nets)
        for k, gate in enumerate(gates):
            if not (isinstance(gate, list) and len(gate) == 3 and isinstance(gate[0], str)):
                raise NetlistError(f"netlist: gate {k} must be [kind, [inputs], [outputs]]")
            kind, ins, outs = gate
            nl.add_gate(kind, _net_list(ins, len(nets), k), _net_list(outs, len(nets), k))
        nl.outputs = _net_list(outputs, len(nets), "outputs", allow_none=True)
        return nl.validate()

    def __repr__(self) -> str:
        return (f"Netlist({self.a_bits}x{self.b_bits}->{self.out_bits}, "
                f"{len(self.gates)} gates)")




def _int_field(data: dict, key: str, low: int, high: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise NetlistError(f"netlist: '{key}' must be an integer {low}..{high}, "
                           f"found {value!r:.40}")
    return value


def _net_list(values: object, n_nets: int, where: object, allow_none: bool = False) -> list:
    """Net indices, each an int naming an existing net (negative ones would wrap around);
    ``None`` (an unassigned output, which :meth:`Netlist.validate` reports) if allowed."""
    if not isinstance(values, list):
        raise NetlistError(f"netlist: gate {where}: expected a list of net indices")
    for v in values:
        if v is None and allow_none:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < n_nets:
            raise NetlistError(f"netlist: gate {where}: net {v!r:.40} is not one of the "
                               f"{n_nets} nets")
    return list(values)
