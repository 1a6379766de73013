"""Run the README's commands as a newcomer would, in order, in a fresh folder, and check
(or, with ``--write``, regenerate) the outputs the README shows.

The README is the user's door, so its examples must run as written from a clean checkout and
print what it says they print.  This script is the one place that knows how:

* a fenced block line starting with ``$ `` is a command (``\\`` continues it on the next
  line); the lines up to the next ``$`` line or the fence are its output;
* a fenced block whose first line (after ``#`` comments) starts with ``hwcost`` or
  ``torchrun`` lists commands without output
  (runs on data a reader supplies, e.g. CIFAR-10): each must still be accepted; it is run
  with ``--dry-run`` where the command has it, else as written on generated data in the
  same format (see :data:`LISTED_SETTINGS`);
* commands run in README order in one scratch folder (``examples``, ``tests`` and
  ``arch_specs`` linked in, ``HWCOST_HOME`` inside it, shown as ``/tmp/hh``), through
  ``bash`` (exit status: the pipeline's last command's, as in a terminal) with
  this Python's ``hwcost`` first on ``PATH``, one torch thread (``--threads 1`` is in the
  worked examples; ``OMP_NUM_THREADS=1`` covers the rest);
* torch's float kernels are capped at AVX2 (:data:`PINNED_NUMERICS`), so AVX2 and
  AVX-512 machines print the same figures;
* outputs are compared line for line after durations (``1543 ms``, ``0.6 s``) are masked,
  the only figures that differ between two runs on one machine: everything else, training
  accuracies included, is bit-identical at one thread (tests/hwcost/test_reproducible.py).

Commands that time things or run for an hour (the benchmarks, the full experiment) are
listed in :data:`NOT_RUN` with the reason; commands needing Accelergy's estimators run only
where ``hwcomponents`` imports.  ``tests/test_readme_commands.py`` runs the check.

Usage::

    python examples/readme_commands.py            # check; exit 1 on the first difference
    python examples/readme_commands.py --write    # rerun and rewrite the README's outputs
    python examples/readme_commands.py --list     # the commands, in order
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: commands (by prefix) that the check does not run, and why
NOT_RUN = {
    "python benchmarks/": "a benchmark: its figures are timings of one machine",
    "hwcost experiment ": "the full experiment runs for about an hour and --quick for a "
    "minute; tests/nas/test_experiment.py runs --quick end to end",
    "bash .ci/run": "CI itself",
    "pip install": "installs; CI runs these lines word for word",
}

#: commands listed without output (in the README's command blocks and in --help examples)
#: read data a reader supplies or run for long: the check runs each on generated files in the
#: same format (CIFAR-10 python batches in ``data/``) with the first matching settings
#: appended (click keeps an option's last value), so that each takes seconds
LISTED_SETTINGS = [
    (r"^hwcost (search|train) .*--dataset cifar10", "--epochs 1 --layers 3 --channels 2 "
     "--batch-size 8 --max-steps 1 --threads 1"),
    (r"^hwcost sweep ", "--dry-run"),
    (r"^hwcost (train|evaluate) ", "--threads 1"),
    (r"^torchrun ", "--epochs 1 --layers 3 --channels 2 --batch-size 8 --max-steps 1"),
]

_DURATION = re.compile(r"\b\d+(?:[.,]\d+)?\s?(?:ms|s|min|us)\b|(?<=\"seconds\": )[-+.\deE]+")
_COMMAND_START = re.compile(r"^(hwcost|torchrun)\b")
#: a Python warning (FutureWarning, UserWarning, ...): nothing a user can act on belongs in
#: what a command prints (hwcost's own warnings start with a lower-case "warning:")
_PYTHON_WARNING = re.compile(r"\b[A-Z]\w*Warning\b")


@dataclass
class Command:
    line: int                     # 1-based line of the command in the README
    text: str                     # the command, continuations joined
    output: list[str] = field(default_factory=list)   # the README's output lines
    shows_output: bool = True     # a '$' command (its output follows) or a listed one
    span: tuple[int, int] = (0, 0)   # README lines [start, end) of the output
    origin: str = ""              # for a --help example: the command whose help shows it

    @property
    def where(self) -> str:
        return f"{self.origin} --help" if self.origin else f"README:{self.line}"


def parse(lines: list[str]) -> list[Command]:
    """The README's commands in order (see the module docstring)."""
    commands: list[Command] = []
    i, n = 0, len(lines)
    while i < n:
        if not lines[i].startswith("```"):
            i += 1
            continue
        i += 1
        first = i
        while first < n and (lines[first].startswith("#") or not lines[first].strip()):
            first += 1   # comments above a block's commands
        listed = first < n and bool(_COMMAND_START.match(lines[first]))
        current: Command | None = None
        while i < n and not lines[i].startswith("```"):
            raw = lines[i]
            if raw.startswith("$ ") or (listed and _COMMAND_START.match(raw)):
                start = i
                text = raw[2:] if raw.startswith("$ ") else raw
                while text.endswith("\\") and i + 1 < n:
                    i += 1
                    text = text[:-1].rstrip() + " " + lines[i].strip()
                current = Command(start + 1, text, shows_output=raw.startswith("$ "),
                                  span=(i + 1, i + 1))
                commands.append(current)
            elif current is not None and current.shows_output:
                current.output.append(raw)
                current.span = (current.span[0], i + 1)
            i += 1
        i += 1
    return commands


def help_commands() -> list[Command]:
    """The examples in ``hwcost --help`` and every subcommand's help, in the CLI's order
    (a group's examples, then its commands' in registration order)."""
    import click

    from hwcost.cli import cli

    found: list[Command] = []

    def visit(cmd: click.Command, path: str) -> None:
        lines = (cmd.help or "").split("\n")
        k = 0
        while k < len(lines):
            if re.match(r"^\s*Examples?:\s*$", lines[k]):
                k += 1
                while k < len(lines) and lines[k].strip():
                    text = lines[k].strip()
                    while text.endswith("\\") and k + 1 < len(lines):
                        k += 1
                        text = text[:-1].rstrip() + " " + lines[k].strip()
                    if text.startswith("hwcost"):
                        found.append(Command(0, text, shows_output=False, origin=path))
                    k += 1
            k += 1
        for name, sub in getattr(cmd, "commands", {}).items():
            visit(sub, f"{path} {name}")

    visit(cli, "hwcost")
    return found


def skip_reason(cmd: Command) -> str | None:
    for prefix, why in NOT_RUN.items():
        if cmd.text.startswith(prefix):
            return why
    if "--estimators accelergy" in cmd.text or (
            "glb_pes.ert.yaml" in cmd.text and cmd.text.startswith("grep")):
        try:
            import hwcomponents  # noqa: F401
        except ImportError:
            return "needs Accelergy's estimators (the [accelergy] extra, Python 3.12)"
    return None


#: the README's outputs were made with this HWCOST_HOME (its Commands section says so)
README_HOME = "/tmp/hh"


def masked(lines: list[str]) -> list[str]:
    return [_DURATION.sub("<time>", line.rstrip()) for line in lines]


# torch picks its float kernels by the CPU: on an AVX-512 machine ATen's vectorized ops and
# oneDNN's convolutions sum in another order than on an AVX2 one, so a few training steps
# end with other losses (measured: the worked example's search loss 1.9136 against 1.9091
# on an AVX2-only CPU).  These variables cap both at AVX2 (and MKL's reproducibility mode
# with them), which any x86-64 CPU with AVX2 runs bit for bit alike: the README's outputs
# are made and checked under them.  hwcost's own emulation is bit-exact on every path.
PINNED_NUMERICS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                   "MKL_CBWR": "AVX2"}


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def pinned_numerics(machine: str, flags: set[str]) -> dict[str, str]:
    """:data:`PINNED_NUMERICS` where they apply (x86-64 with AVX2), else nothing: another
    architecture's outputs may then differ from the README's in the last digits."""
    if machine.lower() in ("x86_64", "amd64") and "avx2" in flags:
        return dict(PINNED_NUMERICS)
    return {}


def make_sandbox(folder: Path) -> dict[str, str]:
    """The scratch folder a newcomer's shell would be in, and its environment."""
    for name in ("examples", "tests", "arch_specs"):
        (folder / name).symlink_to(ROOT / name)
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, HWCOST_HOME=str(folder / "home"), OMP_NUM_THREADS="1",
               PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", COLUMNS="200",
               PYTHONDONTWRITEBYTECODE="1")
    env.update(pinned_numerics(platform.machine(), cpu_flags()))
    env.pop("TRITON_INTERPRET", None)
    write_cifar_batches(folder / "data")
    return env


def write_cifar_batches(folder: Path, n_train: int = 64, n_test: int = 32) -> None:
    """CIFAR-10's python batches (the format the README's CIFAR commands read), generated."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    base = folder / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)

    def batch(name: str, count: int) -> None:
        data = {b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                b"labels": [int(v) for v in rng.integers(0, 10, count)]}
        with open(base / name, "wb") as fh:
            pickle.dump(data, fh)

    for k in range(1, 6):
        batch(f"data_batch_{k}", n_train // 5 + 1)
    batch("test_batch", n_test)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{k}".encode() for k in range(10)]}, fh)


def prepared(cmd: Command) -> str:
    """The command line to run: as written, or with the settings of LISTED_SETTINGS."""
    text = cmd.text
    if cmd.shows_output:
        return text
    for pattern, extra in LISTED_SETTINGS:
        if re.search(pattern, text):
            return f"{text} {extra}"
    return text


@dataclass
class Outcome:
    cmd: Command
    status: str            # "same", "differs", "failed", "skipped"
    detail: str = ""
    output: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run(commands: list[Command], sandbox: Path, env: dict[str, str],
        only: str | None = None) -> list[Outcome]:
    outcomes = []
    for cmd in commands:
        why = skip_reason(cmd)
        if why or (only and only not in cmd.text):
            outcomes.append(Outcome(cmd, "skipped", why or "not selected"))
            continue
        start = time.perf_counter()
        proc = subprocess.run(["bash", "-c", prepared(cmd)],
                              cwd=sandbox, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=900)
        took = time.perf_counter() - start
        text = proc.stdout.replace(env["HWCOST_HOME"], README_HOME)
        got = text.rstrip("\n").split("\n") if text.strip() else []
        want_error = any(line.startswith("Error:") for line in cmd.output)
        if (proc.returncode != 0) != want_error:
            outcomes.append(Outcome(cmd, "failed", f"exit status {proc.returncode}", got, took))
            continue
        noise = [line for line in got if _PYTHON_WARNING.search(line)]
        if noise:
            outcomes.append(Outcome(cmd, "failed", f"prints a Python warning: {noise[0]!r}", got,
                                    took))
            continue
        if cmd.shows_output and masked(got) != masked(cmd.output):
            first = next((k for k, (a, b) in enumerate(zip(masked(got), masked(cmd.output)))
                          if a != b), min(len(got), len(cmd.output)))
            have = got[first] if first < len(got) else "<end of output>"
            want = cmd.output[first] if first < len(cmd.output) else "<end of output>"
            outcomes.append(Outcome(cmd, "differs", f"output line {first + 1}: README shows "
                                    f"{want!r}, the command printed {have!r}", got, took))
            continue
        outcomes.append(Outcome(cmd, "same", output=got, seconds=took))
    return outcomes


def rewrite(lines: list[str], outcomes: list[Outcome]) -> list[str]:
    """The README with each rerun command's output replaced by what it printed."""
    new = list(lines)
    for out in sorted(outcomes, key=lambda o: -o.cmd.line):
        if out.status in ("same", "differs") and out.cmd.shows_output:
            start, end = out.cmd.span
            new[start:end] = out.output
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the README's outputs")
    parser.add_argument("--list", action="store_true", help="list the commands and exit")
    parser.add_argument("--only", help="run only commands containing this text (with the "
                        "earlier ones they depend on skipped: for quick looks)")
    parser.add_argument("--keep", type=Path, help="scratch folder to use and keep")
    args = parser.parse_args(argv)
    lines = README.read_text(encoding="utf-8").split("\n")
    commands = parse(lines)
    helps = [] if args.write else help_commands()
    if args.list:
        for cmd in commands + helps:
            why = skip_reason(cmd)
            print(f"{cmd.where}: {cmd.text}" + (f"   [not run: {why}]" if why else ""))
        return 0
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="hwcost-readme-"))
    outcomes = []
    try:
        # the README in one folder, the --help examples in another: each is a newcomer's
        # session of its own (both write runs/demo, for one)
        for name, group in (("readme", commands), ("help", helps)):
            folder = scratch / name
            folder.mkdir(parents=True, exist_ok=True)
            outcomes += run(group, folder, make_sandbox(folder), args.only)
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    bad = [o for o in outcomes if o.status in ("failed", "differs")]
    for o in outcomes:
        mark = {"same": "ok", "skipped": "--", "failed": "FAIL", "differs": "DIFF"}[o.status]
        note = f"  ({o.detail})" if o.detail else ""
        took = f"{o.seconds:5.1f}s" if o.status != "skipped" else "      "
        print(f"{mark:4} {took} {o.cmd.where}: {o.cmd.text[:90]}{note}")
        if o.status == "failed":
            print("\n".join("      " + line for line in o.output[-8:]))
    if args.write:
        failed = [o for o in outcomes if o.status == "failed"]
        if failed:
            print(f"{len(failed)} command(s) failed; README left unchanged", file=sys.stderr)
            return 1
        README.write_text("\n".join(rewrite(lines, outcomes)), encoding="utf-8")
        print(f"rewrote the outputs of {sum(o.status == 'differs' for o in outcomes)} "
              "command(s)")
        return 0
    print(f"{sum(o.status == 'same' for o in outcomes)} as shown, {len(bad)} not, "
          f"{sum(o.status == 'skipped' for o in outcomes)} not run")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
