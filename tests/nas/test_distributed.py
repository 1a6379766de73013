"""Multi-process training: 2 gloo processes on 127.0.0.1 train like one process with the same
global batch, write the same checkpoints, and resume after a kill."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas import checkpoint
from nas.distributed import DistributedBatchNorm2d, shard

GENO = str(Path(__file__).resolve().parents[2] / "examples" / "small_genotype.json")
ARGS = ["--dataset", "synthetic", "--epochs", "2", "--layers", "3", "--channels", "4",
        "--batch-size", "16", "--max-steps", "3", "--backend", "cpu", "--drop-path", "0",
        "--arch", "edge"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hwcost", "train", GENO, *ARGS, "--out", str(out), *extra]


def _ddp(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
            "-m", "hwcost", "train", GENO, *ARGS, "--out", str(out), *extra]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _rows(out: Path) -> list[dict]:
    with open(out / "train.csv") as f:
        return list(csv.DictReader(f))


def test_shards_cover_a_batch_once():
    for n in (16, 15, 3):
        parts = [shard(n, r, 2) for r in range(2)]
        assert sorted(i for p in parts for i in range(n)[p]) == list(range(n))


def test_distributed_batchnorm_is_plain_batchnorm_in_one_process():
    torch.manual_seed(0)
    bn, dbn = torch.nn.BatchNorm2d(3), DistributedBatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5)
    assert torch.equal(bn(x), dbn(x))
    assert torch.equal(bn.running_var, dbn.running_var)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    float_run = ("--multiplier", "fp32")
    for name, cmd in (("single", _single(root / "single")), ("ddp", _ddp(root / "ddp")),
                      ("single-fp32", _single(root / "single-fp32", *float_run)),
                      ("ddp-fp32", _ddp(root / "ddp-fp32", *float_run))):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())
        assert res.returncode == 0, res.stdout + res.stderr
        if name.startswith("ddp"):   # process 0 alone reports
            assert res.stdout.count("test accuracy") == 1, res.stdout
    return root


def test_two_gloo_processes_follow_the_single_process_loss_curve(runs):
    single, ddp = _rows(runs / "single"), _rows(runs / "ddp")
    assert len(single) == len(ddp) == 2
    for a, b in zip(single, ddp):
        assert float(b["train_loss"]) == pytest.approx(float(a["train_loss"]), rel=1e-3)
        assert float(b["test_loss"]) == pytest.approx(float(a["test_loss"]), rel=1e-3)
        assert abs(float(b["test_acc"]) - float(a["test_acc"])) <= 2 / 512
    # the approximate network quantizes: an activation that lands on a rounding boundary in
    # one summation order and not the other is one code apart, so its weights drift apart a
    # little; the float network shows the DDP arithmetic itself (gradient scale, global BN
    # statistics) to float tolerance: after 6 steps the weights agree to ~5e-5 (summation
    # order), where a wrong gradient scale or per-process BN statistics move them by ~1e-2
    one = checkpoint.load(runs / "single-fp32" / "checkpoint.pt")["model"]
    two = checkpoint.load(runs / "ddp-fp32" / "checkpoint.pt")["model"]
    assert one.keys() == two.keys()   # a DDP checkpoint is a plain one
    for k, t in one.items():
        if torch.is_tensor(t) and t.is_floating_point():
            torch.testing.assert_close(two[k], t, rtol=1e-3, atol=2e-4, msg=k)
    for a, b in zip(_rows(runs / "single-fp32"), _rows(runs / "ddp-fp32")):
        assert float(b["train_loss"]) == pytest.approx(float(a["train_loss"]), rel=1e-4)


def test_killed_ddp_run_resumes_to_the_same_result(runs, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(_ddp(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(), start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "train.csv").exists() and len(_rows(out)) == 1:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rows = _rows(out)
    assert len(rows) == 1     # killed after the first epoch's checkpoint
    res = subprocess.run(_ddp(out, "--resume"), capture_output=True, text=True, timeout=600,
                         env=_env())
    assert res.returncode == 0, res.stdout + res.stderr
    assert _rows(out) == _rows(runs / "ddp")
    a = checkpoint.load(out / "checkpoint.pt")["model"]
    b = checkpoint.load(runs / "ddp" / "checkpoint.pt")["model"]
    for k in a:
        assert (torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k]), k


def test_search_under_torchrun_is_refused_in_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hwcost.cli import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    res = CliRunner().invoke(cli, ["search", "--dataset", "synthetic", "--epochs", "1",
                                   "--layers", "3", "--channels", "2", "--out",
                                   str(tmp_path / "s")])
    assert res.exit_code == 1 and "runs in one process" in res.output
    assert "Traceback" not in res.output
