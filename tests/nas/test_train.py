"""hwcost train / evaluate on the synthetic task: outputs, resume, checkpoint checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import HwcostError
from darts.genotype_io import load
from hwcost.cli import cli
from nas import checkpoint
from nas.train import TrainConfig, evaluate_checkpoint, run_train

GENO = Path(__file__).resolve().parents[2] / "examples" / "small_genotype.json"


def tiny(**kw) -> TrainConfig:
    base = dict(dataset="synthetic", synthetic_size=48, epochs=2, layers=3, channels=4,
                batch_size=8, max_steps=2, backend="cpu", seed=1, drop_path=0.1)
    base.update(kw)
    return TrainConfig(**base)


def test_train_resume_equals_uninterrupted(tmp_path):
    geno = load(GENO)
    full = run_train(geno, tiny(), tmp_path / "full")

    class Killed(Exception):
        pass

    def die(epoch, step):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        run_train(geno, tiny(), tmp_path / "cut", progress=die)
    resumed = run_train(geno, tiny(), tmp_path / "cut", resume=True)
    assert resumed == full
    assert (tmp_path / "full" / "train.csv").read_text() == \
        (tmp_path / "cut" / "train.csv").read_text()
    with pytest.raises(HwcostError, match="another genotype or other settings"):
        run_train(geno, tiny(lr=0.5), tmp_path / "cut", resume=True)


def test_cli_train_then_evaluate_table(tmp_path):
    runner = CliRunner()
    out = tmp_path / "t"
    res = runner.invoke(cli, ["train", str(GENO), "--dataset", "synthetic", "--epochs", "1",
                              "--layers", "3", "--channels", "4", "--batch-size", "8",
                              "--max-steps", "2", "--backend", "cpu", "--arch", "edge",
                              "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    result = json.loads((out / "result.json").read_text())
    assert 0.0 <= result["test_acc"] <= 1.0 and result["energy_pj"] > 0
    res = runner.invoke(cli, ["evaluate", str(out / "checkpoint.pt"), "--multiplier",
                              "exact8u", "--multiplier", "trunc8u_k8", "--multiplier", "fp32",
                              "--arch", "edge", "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["multiplier"] for r in rows] == ["exact8u", "trunc8u_k8", "fp32"]
    assert rows[1]["energy_pj"] < rows[0]["energy_pj"]    # same network, cheaper products
    # the float baseline: the same weights run in float, priced on the float design
    assert rows[2]["energy_pj"] > 2 * rows[0]["energy_pj"]
    # swapping back the trained multipliers reproduces the "as trained" accuracy
    again = evaluate_checkpoint(out / "checkpoint.pt", None)
    assert again[0]["multiplier"] == "as trained"


def test_evaluate_refuses_damaged_or_wrong_checkpoints(tmp_path):
    path = tmp_path / "x.pt"
    checkpoint.save(path, {"kind": "search"})
    with pytest.raises(HwcostError, match="not a training checkpoint"):
        evaluate_checkpoint(path)
    path.write_bytes(path.read_bytes()[:-3])
    res = CliRunner().invoke(cli, ["evaluate", str(path)])
    assert res.exit_code == 1 and "corrupted" in res.output


@pytest.mark.parametrize("grad", ["ste", "lut"])
def test_grad_setting_reaches_every_approximate_layer(grad):
    from multiplier_lib.emulate.layers import ApproxConv2d
    from nas.train import build_network

    model = build_network(load(GENO), tiny(grad=grad, multiplier="trunc8u_k6c"), 10)
    layers = [m for m in model.modules() if isinstance(m, ApproxConv2d)]
    assert layers and {m.grad for m in layers} == {grad}


def test_grad_lut_trains_differently_from_ste(tmp_path):
    """The LUT backward is not the straight-through one: same seed, other weights."""
    geno = load(GENO)
    run_train(geno, tiny(grad="ste", multiplier="bam8u_h2v6"), tmp_path / "ste")
    run_train(geno, tiny(grad="lut", multiplier="bam8u_h2v6"), tmp_path / "lut")
    a = checkpoint.load(tmp_path / "ste" / "checkpoint.pt")["model"]
    b = checkpoint.load(tmp_path / "lut" / "checkpoint.pt")["model"]
    weights = [k for k in a if k.endswith("weight")]
    assert any(not a[k].equal(b[k]) for k in weights)


def test_bad_grad_is_refused():
    with pytest.raises(HwcostError, match="grad must be ste or lut"):
        run_train(load(GENO), tiny(grad="exact"), "unused")
