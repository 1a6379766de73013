"""C models run confined (issue 22, class 3): a model that writes or creates a file, starts a
process (double fork and setsid included), opens a socket, signals another process or raises
a limit, in its function or in a constructor, is stopped with one clear line, leaves no trace
and no process behind, and leaves the library byte-identical; a model that only computes
(or reads a file, or aborts) behaves as before; a data file never compiles a C model.

Generated over actions x places (the function, a constructor), with a marker file per case
that the action would create if it ran."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwcost.cli import cli
from multiplier_lib.errors import ImportFailed
from multiplier_lib.importers import import_file

pytestmark = [pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc)"),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="the seccomp sandbox is Linux's")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: action -> C statements doing it; MARK is the path it would create, LIB the library folder
ACTIONS = {
    "system": 'system("touch MARK");',
    "fopen-write": 'FILE *f = fopen("MARK", "w"); if (f) fclose(f);',
    "open-creat": 'int fd = open("MARK", O_WRONLY | O_CREAT, 0644); if (fd >= 0) close(fd);',
    "append-existing": 'FILE *f = fopen("LIB/victim.txt", "a"); if (f) { fputs("x", f); '
                       'fclose(f); } FILE *g = fopen("MARK", "w"); if (g) fclose(g);',
    "rename": 'rename("LIB/victim.txt", "MARK");',
    "unlink": 'unlink("LIB/victim.txt"); FILE *g = fopen("MARK", "w"); if (g) fclose(g);',
    "mkdir": 'mkdir("MARK", 0755);',
    "symlink": 'symlink("/etc/passwd", "MARK");',
    "socket": 'int s = socket(AF_INET, SOCK_STREAM, 0); if (s >= 0) { close(s); '
              'FILE *g = fopen("MARK", "w"); if (g) fclose(g); }',
    "fork": 'if (fork() == 0) { FILE *g = fopen("MARK", "w"); if (g) fclose(g); _exit(0); }',
    "double-fork-setsid": 'if (fork() == 0) { setsid(); if (fork() == 0) { sleep(1); '
                          'FILE *g = fopen("MARK", "w"); if (g) fclose(g); _exit(0); } '
                          '_exit(0); }',
    "execve": 'char *argv[] = {"/usr/bin/touch", "MARK", 0}; execve(argv[0], argv, 0);',
    "kill-parent": 'kill(getppid(), SIGTERM); FILE *g = fopen("MARK", "w"); if (g) fclose(g);',
    "raise-limit": 'struct rlimit r = {RLIM_INFINITY, RLIM_INFINITY}; '
                   'if (setrlimit(RLIMIT_AS, &r) == 0) { FILE *g = fopen("MARK", "w"); '
                   'if (g) fclose(g); }',
}

PRELUDE = """#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
"""


def _model(action: str, place: str, mark: Path, lib: Path) -> str:
    body = ACTIONS[action].replace("MARK", str(mark)).replace("LIB", str(lib))
    if place == "constructor":
        return (PRELUDE + f"__attribute__((constructor)) static void hostile(void) {{ {body} }}\n"
                "uint64_t mul8u_evil(const uint64_t B, const uint64_t A) { return A * B; }\n")
    return (PRELUDE + "uint64_t mul8u_evil(const uint64_t B, const uint64_t A) {\n"
            f"    static int done; if (!done) {{ done = 1; {body} }}\n    return A * B;\n}}\n")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("place", ["function", "constructor"])
@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_hostile_model_is_stopped_and_leaves_no_trace(tmp_path, monkeypatch, action, place):
    home = tmp_path / "home"
    lib = home / "multipliers"
    lib.mkdir(parents=True)
    (lib / "victim.txt").write_text("keep")
    monkeypatch.setenv("HWCOST_HOME", str(home))
    assert CliRunner().invoke(cli, ["multipliers", "import",
                                    str(EXAMPLES / "multipliers" / "mul8u_bam26.bin")]
                              ).exit_code == 0
    before = _tree(lib)
    mark = tmp_path / "MARKER"
    src = tmp_path / "mul8u_evil.c"
    src.write_text(_model(action, place, mark, lib))
    res = CliRunner().invoke(cli, ["multipliers", "import", str(src)])
    assert res.exit_code == 1, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("Error: "), res.output
    assert "stopped by the sandbox" in res.output, res.output
    if action == "double-fork-setsid":
        time.sleep(1.5)          # the grandchild would have written by now
    assert not mark.exists() and not mark.is_symlink()
    assert _tree(lib) == before                                       # byte-identical


def test_a_model_that_only_computes_reads_or_aborts_behaves_as_before(tmp_path):
    reads = tmp_path / "mul8u_reads.c"
    reads.write_text(PRELUDE + 'uint64_t mul8u_reads(const uint64_t B, const uint64_t A) {\n'
                     '    static int done; if (!done) { done = 1; FILE *f = '
                     'fopen("/etc/hostname", "r"); if (f) fclose(f); }\n    return A * B;\n}\n')
    m = import_file(reads)
    assert int(m.lut[7, 9]) == 63 and int(m.lut[255, 255]) == 65025
    aborts = tmp_path / "mul8u_aborts.c"
    aborts.write_text(PRELUDE + "uint64_t mul8u_aborts(const uint64_t B, const uint64_t A) "
                      "{ if (A == 3) abort(); return A * B; }\n")
    with pytest.raises(ImportFailed, match="crashed \\(SIGABRT\\)"):
        import_file(aborts)


def test_no_sandbox_no_run_unless_trusted(tmp_path, monkeypatch):
    """Where the sandbox cannot be built, the import is refused unless the user trusts the
    file; emulated by a runner source that does not compile."""
    from multiplier_lib.importers import c_model

    broken = tmp_path / "runner.c"
    broken.write_text("#error no seccomp here\nint main(void) { return 0; }\n")
    monkeypatch.setattr(c_model, "_RUNNER_SOURCE", broken)
    monkeypatch.delenv("HWCOST_TRUST_C", raising=False)
    src = EXAMPLES / "multipliers" / "mul8u_trunc6.c"
    with pytest.raises(ImportFailed, match="--trust-c"):
        import_file(src)
    res = CliRunner().invoke(cli, ["characterize", str(src)])
    assert res.exit_code == 1 and "--trust-c" in res.output
    # trusted: built without the sandbox (the broken source still fails to build: the
    # second attempt is made, and its failure reported)
    monkeypatch.setenv("HWCOST_TRUST_C", "1")
    with pytest.raises(ImportFailed, match="cannot build the runner"):
        import_file(src)


def test_data_files_never_name_a_c_model(tmp_path):
    doc = json.loads((EXAMPLES / "small_genotype.json").read_text())
    doc["multiplier"] = str(EXAMPLES / "multipliers" / "mul8u_trunc6.c")
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc, indent=1))
    res = CliRunner().invoke(cli, ["estimate", str(path), "--arch", "eyeriss"])
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert "names a C model" in res.output and "hwcost multipliers import" in res.output
    assert f"{path}:" in res.output                        # file and line named


@pytest.mark.parametrize("kind", ["search config", "sweep file"])
def test_settings_files_never_name_a_c_model(tmp_path, kind):
    c_file = EXAMPLES / "multipliers" / "mul8u_trunc6.c"
    if kind == "search config":
        path = tmp_path / "s.yaml"
        path.write_text(f"dataset: synthetic\nepochs: 1\nmultipliers: exact8u,{c_file}\n")
        args = ["search", "--config", str(path), "--dry-run"]
    else:
        path = tmp_path / "sweep.yaml"
        path.write_text(f"grid:\n  energy_weight: [0]\n  multipliers: [exact8u, {c_file}]\n")
        args = ["sweep", str(path), "--dry-run"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert "is a C model" in res.output and f"{path}:3:" in res.output
    # the command line may still name one: it runs in the importer's sandbox
    ok = CliRunner().invoke(cli, ["search", "--dataset", "synthetic", "--multiplier",
                                  str(c_file), "--dry-run"])
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("field", ["multiplier", "candidates"])
def test_a_saved_layer_state_never_names_a_c_model(field):
    from core.errors import HwcostError
    from multiplier_lib.emulate.layers import ApproxConv2d

    layer = ApproxConv2d(2, 2, 3, padding=1, multiplier="exact8u", backend="reference")
    state = layer.state_dict()
    key = next(k for k in state if k.endswith("_extra_state"))
    c_file = str(EXAMPLES / "multipliers" / "mul8u_trunc6.c")
    extra = dict(state[key])
    extra[field] = c_file if field == "multiplier" else ["exact8u", c_file]
    state[key] = extra
    with pytest.raises(HwcostError, match="not C models"):
        ApproxConv2d(2, 2, 3, padding=1, multiplier="exact8u",
                     backend="reference").load_state_dict(state)
