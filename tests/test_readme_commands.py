"""Every command in the README and in every ``--help`` example runs as written from a clean
checkout and prints what the README shows (``examples/readme_commands.py``), and the
script's own parsing and comparison rules do what they say."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("readme_commands",
                                               ROOT / "examples" / "readme_commands.py")
rc = importlib.util.module_from_spec(_spec)
sys.modules["readme_commands"] = rc   # dataclasses look their module up by name
_spec.loader.exec_module(rc)

SNIPPET = """intro
```
$ hwcost one --a \\
    --b
out 1
out 2
$ hwcost two
Error: bad
```
prose
```bash
# a comment
hwcost search --dataset cifar10 \\
    --x
hwcost train g.json --dataset cifar10
```
```
not a command
```
"""


def test_parse_joins_continuations_and_keeps_outputs_and_spans():
    lines = SNIPPET.split("\n")
    cmds = rc.parse(lines)
    assert [c.text for c in cmds] == ["hwcost one --a --b", "hwcost two",
                                      "hwcost search --dataset cifar10 --x",
                                      "hwcost train g.json --dataset cifar10"]
    assert cmds[0].output == ["out 1", "out 2"] and cmds[1].output == ["Error: bad"]
    assert [c.shows_output for c in cmds] == [True, True, False, False]
    start, end = cmds[0].span
    assert lines[start:end] == ["out 1", "out 2"]
    assert cmds[0].line == 3 and cmds[2].line == 13


def test_listed_commands_get_their_quick_settings_and_shown_ones_run_as_written():
    cmds = rc.parse(SNIPPET.split("\n"))
    assert rc.prepared(cmds[0]) == "hwcost one --a --b"
    assert rc.prepared(cmds[2]).startswith("hwcost search --dataset cifar10 --x --epochs 1 ")
    assert "--max-steps 1" in rc.prepared(cmds[3])
    sweep = rc.Command(0, "hwcost sweep grid.yaml --out runs/s", shows_output=False)
    assert rc.prepared(sweep) == "hwcost sweep grid.yaml --out runs/s --dry-run"


def test_only_durations_are_masked():
    got = rc.masked(["priced in 1543 ms", ' "seconds": 1.25,', "took 0.6 s", "acc 0.1113",
                     "energy 40.73 uJ"])
    assert got == ["priced in <time>", ' "seconds": <time>,', "took <time>", "acc 0.1113",
                   "energy 40.73 uJ"]


def test_rewrite_replaces_outputs_bottom_up():
    lines = SNIPPET.split("\n")
    cmds = rc.parse(lines)
    new = rc.rewrite(lines, [rc.Outcome(cmds[0], "differs", output=["new 1"]),
                             rc.Outcome(cmds[1], "same", output=["Error: worse", "x"])])
    assert new[2:8] == ["$ hwcost one --a \\", "    --b", "new 1", "$ hwcost two",
                        "Error: worse", "x"]


def test_help_examples_are_found_with_their_continuations():
    texts = [c.text for c in rc.help_commands()]
    assert "hwcost multipliers list" in texts
    joined = [t for t in texts if t.startswith("hwcost estimate") and "--format json" in t]
    assert joined and "\\" not in joined[0]
    assert all(c.origin for c in rc.help_commands())


def test_every_readme_and_help_command_runs_as_written(tmp_path, capsys):
    status = rc.main(["--keep", str(tmp_path)])
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith(("FAIL", "DIFF"))]
    assert status == 0 and not problems, "\n".join(problems) or out[-3000:]
    # the check did run the commands (not everything skipped)
    assert sum(line.startswith("ok") for line in out.splitlines()) >= 60


def test_torch_float_kernels_are_pinned_only_where_the_pin_exists():
    """AVX2 and AVX-512 x86 machines must print the README's figures alike (torch sums in
    another order on AVX-512); the pins apply to x86-64 CPUs with AVX2 only."""
    pins = rc.pinned_numerics("x86_64", {"sse2", "avx2", "avx512f"})
    assert pins == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                    "MKL_CBWR": "AVX2"}
    assert rc.pinned_numerics("x86_64", {"sse2", "avx"}) == {}
    assert rc.pinned_numerics("aarch64", {"avx2"}) == {}
    pins["MKL_CBWR"] = "changed"   # a copy: the module's table stays as it was
    assert rc.PINNED_NUMERICS["MKL_CBWR"] == "AVX2"
