"""Netlist structure checks, simulation, pruning, toggles and persistence, on circuits small
enough to work out by hand."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from multiplier_lib.errors import NetlistError
from multiplier_lib.netlist import CELLS, CONST0, CONST1, Netlist


def two_by_two_multiplier() -> Netlist:
    """Exact 2x2 unsigned multiplier: p0 = a0b0, p1 = a1b0 ^ a0b1, p2/p3 from the carries."""
    nl = Netlist(2, 2)
    a0, a1, b0, b1 = nl.a(0), nl.a(1), nl.b(0), nl.b(1)
    p00 = nl.add("AND", a0, b0)
    p10 = nl.add("AND", a1, b0)
    p01 = nl.add("AND", a0, b1)
    p11 = nl.add("AND", a1, b1)
    s1, c1 = nl.add("HA", p10, p01)
    s2, c2 = nl.add("HA", p11, c1)
    for k, net in enumerate([p00, s1, s2, c2]):
        nl.set_output(k, net)
    return nl.validate()


def test_simulation_of_a_hand_built_multiplier() -> None:
    nl = two_by_two_multiplier()
    assert nl.truth_table().tolist() == [[a * b for b in range(4)] for a in range(4)]
    assert nl.gate_counts() == {"AND": 4, "HA": 2}
    assert repr(nl) == "Netlist(2x2->4, 6 gates)"


# Independent definitions of every cell (pins in the order CELLS declares them).
REFERENCE = {
    "BUF": lambda a: (a,), "NOT": lambda a: (1 - a,),
    "AND": lambda a, b: (a & b,), "OR": lambda a, b: (a | b,), "XOR": lambda a, b: (a ^ b,),
    "NAND": lambda a, b: (1 - (a & b),), "NOR": lambda a, b: (1 - (a | b),),
    "XNOR": lambda a, b: (1 - (a ^ b),),
    "AND3": lambda a, b, c: (a & b & c,), "OR3": lambda a, b, c: (a | b | c,),
    "NAND3": lambda a, b, c: (1 - (a & b & c),), "NOR3": lambda a, b, c: (1 - (a | b | c),),
    "MUX2": lambda a, b, s: (b if s else a,),
    "AOI21": lambda a, b, c: (1 - ((a & b) | c),), "OAI21": lambda a, b, c: (1 - ((a | b) & c),),
    "AOI22": lambda a, b, c, d: (1 - ((a & b) | (c & d)),),
    "OAI22": lambda a, b, c, d: (1 - ((a | b) & (c | d)),),
    "HA": lambda a, b: ((a + b) % 2, (a + b) // 2),
    "FA": lambda a, b, c: ((a + b + c) % 2, (a + b + c) // 2),
}


def test_every_cell_matches_its_truth_table() -> None:
    assert set(REFERENCE) == set(CELLS)
    for kind, cell in CELLS.items():
        n = len(cell.inputs)
        rows = list(itertools.product((0, 1), repeat=n))
        columns = [np.array([r[p] for r in rows], dtype=np.uint8) for p in range(n)]
        outs = cell.evaluate(*columns)
        assert len(outs) == len(cell.outputs)
        for r, row in enumerate(rows):
            assert tuple(int(o[r]) for o in outs) == REFERENCE[kind](*row), (kind, row)


# ----------------------------------------------------------------------------- validation


def test_double_driver_is_reported_with_lines() -> None:
    nl = Netlist(1, 1, 1)
    n = nl.new_net("n")
    nl.add_gate("AND", [nl.a(0), nl.b(0)], [n], line=3)
    nl.add_gate("OR", [nl.a(0), nl.b(0)], [n], line=7)
    nl.set_output(0, n)
    with pytest.raises(NetlistError, match=r"net n is driven twice \(first driven at line 3\)") \
            as err:
        nl.validate()
    assert err.value.line == 7


def test_driving_an_input_or_constant_is_reported() -> None:
    for target in (CONST1, 2):
        nl = Netlist(1, 1, 1)
        nl.add_gate("NOT", [3], [target], line=4)
        nl.set_output(0, 3)
        with pytest.raises(NetlistError, match="input or a constant"):
            nl.validate()


def test_reading_an_undriven_net_is_reported() -> None:
    nl = Netlist(1, 1, 1)
    floating = nl.new_net("floating")
    out = nl.new_net()
    nl.add_gate("AND", [nl.a(0), floating], [out], line=12)
    nl.set_output(0, out)
    with pytest.raises(NetlistError, match="floating is read but never driven") as err:
        nl.validate()
    assert err.value.line == 12


def test_undriven_outputs_are_reported() -> None:
    nl = Netlist(1, 1)
    nl.set_output(0, nl.add("AND", nl.a(0), nl.b(0)))
    with pytest.raises(NetlistError, match=r"O\[1\] is never assigned"):
        nl.validate()
    nl.set_output(1, nl.new_net("dangling"))
    with pytest.raises(NetlistError, match=r"O\[1\] reads net dangling"):
        nl.validate()


def test_combinational_loop_is_reported() -> None:
    nl = Netlist(1, 1, 1)
    x, y = nl.new_net("x"), nl.new_net("y")
    nl.add_gate("AND", [nl.a(0), y], [x], line=1)
    nl.add_gate("OR", [x, nl.b(0)], [y], line=2)
    nl.set_output(0, y)
    with pytest.raises(NetlistError, match="combinational loop through"):
        nl.validate()


def test_bad_cells_are_rejected_on_add() -> None:
    nl = Netlist(1, 1)
    with pytest.raises(NetlistError, match="unknown cell kind 'DFF'"):
        nl.add_gate("DFF", [2], [nl.new_net()], line=5)
    with pytest.raises(NetlistError, match="AND takes 2 input"):
        nl.add_gate("AND", [2], [nl.new_net()])


def test_validate_orders_gates_topologically() -> None:
    """Gates written consumer-first (as in a Verilog file) still simulate correctly."""
    nl = Netlist(1, 1, 1)
    x, y = nl.new_net(), nl.new_net()
    nl.add_gate("NOT", [x], [y])
    nl.add_gate("AND", [nl.a(0), nl.b(0)], [x])
    nl.set_output(0, y)
    assert nl.truth_table().tolist() == [[1, 1], [1, 0]]
    assert [g.kind for g in nl.gates] == ["AND", "NOT"]


# ----------------------------------------------------------------------------- pruning


def test_pruned_drops_dead_gates_and_keeps_behaviour() -> None:
    nl = two_by_two_multiplier()
    dead = nl.add("XOR", nl.a(0), nl.a(1))
    nl.add("OR", dead, nl.b(0))
    nl.validate()
    before = nl.truth_table()
    pruned = nl.pruned()
    assert len(nl.gates) == 8 and len(pruned.gates) == 6
    assert "XOR" not in pruned.gate_counts() and "OR" not in pruned.gate_counts()
    np.testing.assert_array_equal(pruned.truth_table(), before)
    assert len(nl.gates) == 8  # the original is untouched


def test_pruned_keeps_a_two_output_cell_if_either_output_is_used() -> None:
    nl = Netlist(1, 1, 1)
    s, _carry = nl.add("HA", nl.a(0), nl.b(0))
    nl.set_output(0, s)
    assert nl.pruned().gate_counts() == {"HA": 1}


# ----------------------------------------------------------------------------- toggles


def test_toggle_counts_by_hand() -> None:
    """y = a & b over a = 0,1,1,0 and b = 1,1,0,0: y = 0,1,0,0 toggles twice, a twice,
    b once, constants never."""
    nl = Netlist(1, 1, 1)
    y = nl.add("AND", nl.a(0), nl.b(0))
    nl.set_output(0, y)
    toggles = nl.toggle_counts(np.array([0, 1, 1, 0]), np.array([1, 1, 0, 0]))
    assert toggles.tolist() == [0, 0, 2, 1, 2]
    assert toggles[y] == 2 and toggles[CONST0] == 0


def test_toggle_counts_of_a_constant_stream_are_zero() -> None:
    nl = two_by_two_multiplier()
    stream = np.full(10, 3)
    assert not nl.toggle_counts(stream, stream).any()


# ----------------------------------------------------------------------------- persistence


def test_to_dict_from_dict_round_trip_through_json() -> None:
    nl = two_by_two_multiplier()
    data = json.loads(json.dumps(nl.to_dict()))
    back = Netlist.from_dict(data)
    assert (back.a_bits, back.b_bits, back.out_bits) == (2, 2, 4)
    assert back.net_names == nl.net_names
    assert [(g.kind, g.inputs, g.outputs) for g in back.gates] == \
        [(g.kind, g.inputs, g.outputs) for g in nl.gates]
    assert back.outputs == nl.outputs
    np.testing.assert_array_equal(back.truth_table(), nl.truth_table())


def test_from_dict_validates() -> None:
    data = two_by_two_multiplier().to_dict()
    data["outputs"][3] = None
    with pytest.raises(NetlistError, match="never assigned"):
        Netlist.from_dict(data)


@pytest.mark.parametrize("n", [0, 1, 2, 4095, 4096, 4097, 8193, 20_000])
def test_chunked_simulation_matches_one_pass(n: int) -> None:
    """simulate/toggle_counts work in chunks to bound memory; the numbers must be exactly
    those of one pass over the whole stream (toggles across chunk borders counted once)."""
    from multiplier_lib.generators import generate

    nl = generate("drum8u_k4").netlist
    rng = np.random.default_rng(n)
    a, b = rng.integers(0, 256, n), rng.integers(0, 256, n)
    values = nl.net_values(a, b)
    toggles = [np.count_nonzero(v[1:] != v[:-1]) for v in values]
    assert nl.toggle_counts(a, b).tolist() == toggles
    raw = np.zeros(n, dtype=np.int64)
    for k, net in enumerate(nl.outputs):
        raw |= values[net].astype(np.int64) << k
    assert np.array_equal(nl.simulate(a, b), raw)
