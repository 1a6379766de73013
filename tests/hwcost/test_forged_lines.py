"""No file name can forge a line of hwcost's output: every reader that names a path in its
error prints one line, with the name's control characters escaped (issue 22, class 2).

Generated over readers x control characters x (missing file, file of garbage)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hwcost.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TL = EXAMPLES / "timeloop"

#: reader -> the command line with {f} where the hostile path goes
READERS = {
    "multipliers import": ["multipliers", "import", "{f}"],
    "characterize": ["characterize", "{f}"],
    "characterize --acts-hist": ["characterize", "exact8u", "--acts-hist", "{f}",
                                 "--weights-hist", str(EXAMPLES / "multipliers" /
                                                       "weights_hist.npy")],
    "estimate genotype": ["estimate", "{f}", "--arch", "eyeriss"],
    "estimate --arch": ["estimate", str(EXAMPLES / "small_genotype.json"), "--arch", "{f}"],
    "estimate --ert": ["estimate", str(EXAMPLES / "small_genotype.json"), "--arch",
                       "eyeriss", "--ert", "{f}"],
    "map --problem": ["map", "--arch", "eyeriss", "--problem", "{f}"],
    "evaluate-mapping --mapping": ["evaluate-mapping", "--arch", str(TL / "conv1d_3level.yaml"),
                                   "--problem", str(TL / "conv1d_oc.yaml"), "--mapping",
                                   "{f}"],
    "search --config": ["search", "--config", "{f}", "--dry-run"],
    "sweep": ["sweep", "{f}", "--dry-run"],
    "train --data-dir": ["train", str(EXAMPLES / "small_genotype.json"), "--dataset", "npz",
                         "--data-dir", "{f}", "--out", "{out}", "--threads", "1"],
    "evaluate": ["evaluate", "{f}", "--threads", "1"],
}
SUFFIX = {"multipliers import": ".bin", "characterize": ".v", "characterize --acts-hist": ".npy",
          "estimate genotype": ".json", "train --data-dir": ".npz", "evaluate": ".pt"}
FORGERS = ["\nError: injected", "\r\x1b[2KError: injected", "\u2028Error: injected"]


@pytest.mark.parametrize("exists", [False, True], ids=["missing", "garbage"])
@pytest.mark.parametrize("forger", FORGERS, ids=["newline", "cr-escape", "u2028"])
@pytest.mark.parametrize("reader", list(READERS))
def test_a_hostile_file_name_gives_one_honest_line(tmp_path, reader, forger, exists):
    path = tmp_path / f"mul8u_sp{forger}{SUFFIX.get(reader, '.yaml')}"
    if exists:
        path.write_bytes(b"\x00garbage: [\n\xff")
    args = [a.replace("{f}", str(path)).replace("{out}", str(tmp_path / "out"))
            for a in READERS[reader]]
    res = CliRunner().invoke(cli, args)
    out = res.output
    assert res.exit_code != 0, out
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert out.count("\n") == 1 and out.startswith("Error: "), repr(out)
    assert "\r" not in out and "\x1b" not in out and "\u2028" not in out
    escaped = forger.encode("unicode_escape").decode("ascii")
    assert escaped in out, (escaped, out)      # the name shows as what it is
