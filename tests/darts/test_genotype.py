"""Genotype files: both formats, round trips, and every validation error with its line."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from core.errors import HwcostError
from darts.genotype import PRIMITIVES, Genotype, validate
from darts.genotype_io import dumps_json, load, loads, to_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# DARTS_V2 typed in from the DARTS paper's code listing (REFERENCE.md), independently of the
# example files, so that a typo in either shows up.
DARTS_V2_NORMAL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
                   ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0),
                   ("skip_connect", 0), ("dil_conv_3x3", 2)]
DARTS_V2_REDUCE = [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2),
                   ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
                   ("skip_connect", 2), ("max_pool_3x3", 1)]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, name: str, text: str) -> HwcostError:
    path = write(tmp_path, name, text)
    with pytest.raises(HwcostError) as info:
        load(path)
    assert info.value.file == str(path)
    return info.value


def test_primitives_are_darts_order():
    assert PRIMITIVES == ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                          "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


def test_darts_v2_text_and_json_agree():
    text = load(EXAMPLES / "darts_v2.txt")
    js = load(EXAMPLES / "darts_v2.json")
    assert text.normal == DARTS_V2_NORMAL and text.reduce == DARTS_V2_REDUCE
    assert text.normal_concat == text.reduce_concat == [2, 3, 4, 5]
    # The JSON file also carries the evaluation network; the DARTS text form cannot.
    assert js.network == {"layers": 20, "channels": 36, "input_size": 32, "classes": 10}
    assert text.network == {}
    assert dataclasses.replace(js, layers=None, channels=None, input_size=None,
                               classes=None) == text
    assert js.source.endswith("darts_v2.json")


def test_small_example_loads_with_multipliers():
    g = load(EXAMPLES / "small_genotype.json")
    assert g.multiplier == "exact8u"
    assert g.edge_multipliers("normal") == ["drum8u_k4", "exact8u", "exact8u", "trunc8u_k6c"]
    assert g.edge_multipliers("reduce") == ["exact8u"] * 4
    assert g.network == {"layers": 3, "channels": 8, "input_size": 8, "classes": 10}


def test_with_multiplier_keeps_every_other_field():
    g = load(EXAMPLES / "small_genotype.json")
    h = g.with_multiplier("trunc8u_k6")
    assert h.multiplier == "trunc8u_k6"
    assert h.normal_multipliers is None and h.reduce_multipliers is None
    assert h.edge_multipliers("normal") == ["trunc8u_k6"] * len(g.normal)
    assert h.network == g.network == {"layers": 3, "channels": 8, "input_size": 8,
                                      "classes": 10}
    assert (h.normal, h.reduce, h.normal_concat, h.reduce_concat) == \
        (g.normal, g.reduce, g.normal_concat, g.reduce_concat)
    assert h.source == g.source
    assert g.edge_multipliers("normal")[0] == "drum8u_k4"   # the original is untouched


def test_round_trips_keep_every_field():
    g = load(EXAMPLES / "small_genotype.json")
    assert loads(dumps_json(g)) == g
    assert loads(to_text(g)) == g
    plain = load(EXAMPLES / "darts_v2.txt")
    assert to_text(plain).startswith("Genotype(normal=[('sep_conv_3x3', 0), ")
    assert loads(to_text(plain)) == plain


def test_text_variants():
    edges = "[('sep_conv_3x3', 0), ('skip_connect', 1)]"
    expected = Genotype([("sep_conv_3x3", 0), ("skip_connect", 1)], [2],
                        [("sep_conv_3x3", 0), ("skip_connect", 1)], [2])
    # range() concat, positional arguments, a module-qualified name, an assignment.
    assert loads(f"Genotype(normal={edges}, normal_concat=range(2, 3), reduce={edges}, "
                 f"reduce_concat=[2])") == expected
    assert loads(f"Genotype({edges}, [2], {edges}, range(2, 3))") == expected
    assert loads(f"X = genotypes.Genotype({edges}, [2], {edges}, [2])") == expected
    many = (f"from collections import namedtuple\nA = Genotype({edges}, [2], {edges}, [2])\n"
            f"B = Genotype({edges}, [2], [('max_pool_3x3', 1), ('avg_pool_3x3', 0)], [2])\n")
    assert loads(many, name="B").reduce == [("max_pool_3x3", 1), ("avg_pool_3x3", 0)]
    with pytest.raises(HwcostError, match=r"2 genotypes in one file \(A, B\)") as info:
        loads(many)
    assert info.value.line == 3
    with pytest.raises(HwcostError, match="no genotype named 'C'"):
        loads(many, name="C")


def test_per_node_json_equals_flat():
    flat = load(EXAMPLES / "darts_v2.json")
    nested = loads(
        '{"normal": ' + str([[list(flat.normal[2 * k]), list(flat.normal[2 * k + 1])]
                             for k in range(4)]).replace("'", '"')
        + ', "normal_concat": [2, 3, 4, 5], "reduce": '
        + str([list(e) for e in flat.reduce]).replace("'", '"')
        + ', "reduce_concat": [2, 3, 4, 5]}')
    assert nested.normal == flat.normal and nested.reduce == flat.reduce


def test_text_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    err = error_of(tmp_path, "evil.txt",
                   f"Genotype(normal=__import__('pathlib').Path({str(marker)!r}).touch(),\n"
                   "         normal_concat=[2], reduce=[], reduce_concat=[2])\n")
    assert "only literal values" in err.message and err.line == 1
    assert not marker.exists()


GOOD_REDUCE = '"reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]], "reduce_concat": [2]'

# (file name, content, expected line, message fragment)
JSON_ERRORS = [
    ("unknown op", '{\n"normal": [\n  ["sep_conv_3x3", 0],\n  ["sep_conv3x3", 1]\n],\n'
     f'"normal_concat": [2],\n{GOOD_REDUCE}}}', 4,
     "unknown op 'sep_conv3x3' on normal edge 1 (did you mean 'sep_conv_3x3'"),
    ("index out of range", '{"normal": [\n  ["sep_conv_3x3", 0],\n  ["skip_connect", 2]\n],\n'
     f'"normal_concat": [2],\n{GOOD_REDUCE}}}', 3,
     "normal edge 1 reads node 2, but node 2 (intermediate node 0) may only read nodes 0..1"),
    ("odd edge count", '{\n\n"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1],\n'
     f'["skip_connect", 0]],\n"normal_concat": [2],\n{GOOD_REDUCE}}}', 3,
     "'normal' has 3 edges, an odd number"),
    ("no edges", f'{{"normal": [],\n"normal_concat": [2],\n{GOOD_REDUCE}}}', 1,
     "'normal' has no edges"),
    ("node without inputs", '{"normal": [\n [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f' []\n],\n"normal_concat": [2],\n{GOOD_REDUCE}}}', 3,
     "normal node 3 (intermediate node 1) has no inputs"),
    ("node with 3 inputs", '{"normal": [\n [["sep_conv_3x3", 0], ["skip_connect", 1],\n'
     f'  ["skip_connect", 0]]\n],\n"normal_concat": [2],\n{GOOD_REDUCE}}}', 2,
     "has 3 inputs; DARTS nodes take exactly 2"),
    ("none op", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     '"normal_concat": [2],\n"reduce": [\n ["max_pool_3x3", 0],\n ["none", 1]],\n'
     '"reduce_concat": [2]}', 5, "op 'none' on reduce edge 1: DARTS never derives 'none'"),
    ("concat out of range", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concat": [\n 2,\n 3\n],\n{GOOD_REDUCE}}}', 4,
     "normal_concat entry 3 is out of range: the normal cell's intermediate nodes are 2..2"),
    ("concat input node", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concat": [1],\n{GOOD_REDUCE}}}', 2, "normal_concat entry 1 is out of range"),
    ("concat twice", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concat": [2, 2],\n{GOOD_REDUCE}}}', 2, "normal_concat lists node 2 twice"),
    ("multiplier count", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concat": [2],\n{GOOD_REDUCE},\n\n'
     '"normal_multipliers": ["exact8u"]}', 5,
     "'normal_multipliers' has 1 entries but the normal cell has 2 edges"),
    ("multiplier type", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concat": [2],\n{GOOD_REDUCE},\n'
     '"multiplier": 8}', 4, "'multiplier' must be a multiplier name"),
    ("malformed", '{\n  "normal": [["sep_conv_3x3", 0],,\n', 2,
     "malformed JSON: Expecting value (column 34)"),
    ("unknown key", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concats": [2],\n{GOOD_REDUCE}}}', 2,
     "unknown key 'normal_concats' (did you mean 'normal_concat'"),
    ("missing key", f'{{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n{GOOD_REDUCE}}}',
     1, "missing 'normal_concat'"),
    ("bad edge", '{"normal": [["sep_conv_3x3", 0],\n ["skip_connect"]],\n'
     f'"normal_concat": [2],\n{GOOD_REDUCE}}}', 2, "normal edge 1 must be [op, input node]"),
    ("bad network value", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concat": [2],\n{GOOD_REDUCE},\n"network": {{\n "layers": 0}}}}', 5,
     "network layers must be a positive integer, not 0"),
    ("network string", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concat": [2],\n{GOOD_REDUCE},\n"network": {{"channels": "36"}}}}', 4,
     "network channels must be an integer"),
    ("network unknown", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concat": [2],\n{GOOD_REDUCE},\n"network": {{"layer": 8}}}}', 4,
     "unknown network key 'layer' (did you mean 'layers'"),
    ("not an object", "[1, 2]", 1, "a JSON genotype must be an object"),
    ("nested too deep", '{"normal": [\n' + "[" * 70 + "]" * 70 + '],\n"normal_concat": [2]}', 2,
     "JSON nested more than 64 levels deep"),
    ("duplicate key", '{"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],\n'
     f'"normal_concat": [2],\n{GOOD_REDUCE},\n"normal": [\n["sep_conv_3x3", 0],\n'
     '["skip_connect", 3]]}', 6, "normal edge 1 reads node 3"),   # the last value counts
]


@pytest.mark.parametrize(("label", "text", "line", "fragment"), JSON_ERRORS,
                         ids=[e[0] for e in JSON_ERRORS])
def test_json_errors_name_the_line(tmp_path, label, text, line, fragment):
    err = error_of(tmp_path, "g.json", text)
    assert fragment in err.message, err.message
    assert err.line == line
    if line is not None:
        assert str(err).startswith(f"{tmp_path / 'g.json'}:{line}: ")


def test_json_number_beyond_python_int_limit(tmp_path):
    limit = sys.get_int_max_str_digits()
    if not limit:
        pytest.skip("integer string conversion unlimited in this interpreter")
    err = error_of(tmp_path, "g.json", '{"normal": [["sep_conv_3x3", 0],\n ["skip_connect", '
                   + "9" * (limit + 1) + "]]}")
    assert err.line == 2 and err.message.startswith("malformed JSON: ")


def test_json_lines_come_from_the_json_parser():
    # strings holding brackets, quotes and escapes, tabs, CRLF line ends, a one-line file:
    # every value keeps the line the JSON parser found it on
    text = ('{"multiplier": "a[{\\"\\\\",\r\n\t"normal": [["sep_conv_3x3", 0],\r\n'
            '\t\t["skip_connect", 2]], "normal_concat": [2], ' + GOOD_REDUCE + "}")
    with pytest.raises(HwcostError, match="normal edge 1 reads node 2") as info:
        loads(text)
    assert info.value.line == 3


TEXT_ERRORS = [
    ("unknown op", "Genotype(\n  normal=[('sep_conv_3x3', 0),\n          ('max_pool', 1)],\n"
     "  normal_concat=[2], reduce=[('skip_connect', 0), ('skip_connect', 1)],\n"
     "  reduce_concat=[2])", 3, "unknown op 'max_pool' on normal edge 1 (did you mean"),
    ("index out of range", "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1),\n"
     "  ('sep_conv_3x3', 3), ('sep_conv_3x3', 1)], normal_concat=range(2, 4),\n"
     "  reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])", 2,
     "normal edge 2 reads node 3, but node 3 (intermediate node 1) may only read nodes 0..2"),
    ("negative index", "Genotype(normal=[('sep_conv_3x3', -1), ('sep_conv_3x3', 1)],\n"
     " normal_concat=[2], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)],\n"
     " reduce_concat=[2])", 1, "reads node -1"),
    ("odd edges", "Genotype(normal=[('sep_conv_3x3', 0)],\n normal_concat=[2],\n"
     " reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])", 1,
     "'normal' has 1 edges, an odd number"),
    ("none op", "Genotype(normal=[('none', 0), ('sep_conv_3x3', 1)], normal_concat=[2],\n"
     " reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])", 1,
     "op 'none' on normal edge 0"),
    ("concat range", "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)],\n"
     " normal_concat=[2], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)],\n"
     " reduce_concat=range(2, 6))", 3, "reduce_concat entry 3 is out of range"),
    ("multiplier count", "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)],\n"
     " normal_concat=[2], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)],\n"
     " reduce_concat=[2],\n reduce_multipliers=['a', 'b', 'c'])", 4,
     "'reduce_multipliers' has 3 entries but the reduce cell has 2 edges"),
    ("unknown argument", "Genotype(normal=[], normal_concat=[2],\n reduce=[], reduce_concat=[2],"
     "\n  channel=16)", 3, "unknown Genotype argument 'channel' (did you mean 'channels'"),
    ("syntax", "Genotype(normal=[('sep_conv_3x3', 0),\n  ('x', 1)], normal_concat=[2]", 1,
     "not a valid genotype: '(' was never closed"),
    ("missing comma", "Genotype(\n normal=[('sep_conv_3x3', 0)\n  ('x', 1)], normal_concat=[2])",
     2, "only literal values are allowed in a Genotype"),
    ("no genotype", "\nhello world\n", 2, "not a valid genotype"),
    ("missing", "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)])", 1,
     "missing 'normal_concat'"),
]


@pytest.mark.parametrize(("label", "text", "line", "fragment"), TEXT_ERRORS,
                         ids=[e[0] for e in TEXT_ERRORS])
def test_text_errors_name_the_line(tmp_path, label, text, line, fragment):
    err = error_of(tmp_path, "g.txt", text)
    assert fragment in err.message, err.message
    assert err.line == line


def test_file_errors(tmp_path):
    with pytest.raises(HwcostError, match="genotype file not found") as info:
        load(tmp_path / "absent.json")
    assert info.value.file == str(tmp_path / "absent.json")
    assert "empty genotype file" in error_of(tmp_path, "empty.json", "  \n").message
    with pytest.raises(HwcostError, match="is a directory"):
        load(tmp_path)


def test_validate_programmatic_genotypes():
    ok = Genotype([("sep_conv_3x3", 0), ("none", 1)], [2], [("max_pool_3x3", 0),
                                                             ("skip_connect", 1)], [2])
    with pytest.raises(HwcostError, match="DARTS never derives 'none'"):
        validate(ok)
    validate(ok, allow_none=True)  # a pruned cell under search may keep a 'none'
    dead = dataclasses.replace(ok, normal=[("none", 0), ("none", 1)])
    with pytest.raises(HwcostError, match=r"node 2 .* has no inputs: both of its edges"):
        validate(dead, allow_none=True)
    with pytest.raises(HwcostError, match="network layers must be a positive integer"):
        validate(dataclasses.replace(ok, normal=ok.reduce, layers=-3))
    with pytest.raises(HwcostError, match=r"normal edge 1 must be \(op, input node\)"):
        validate(dataclasses.replace(ok, normal=[("skip_connect", 0), (3, "sep_conv_3x3")]))
    # Lists, tuples and ranges as DARTS code writes them compare equal to a loaded genotype.
    as_code = Genotype([["sep_conv_3x3", 0], ["none", 1]], range(2, 3),
                       (("max_pool_3x3", 0), ("skip_connect", 1)), (2,))
    assert as_code == ok
