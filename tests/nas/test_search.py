"""Search end to end on the synthetic task: outputs, resume, corruption, NaN, energy weight."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from core.errors import HwcostError
from darts.genotype_io import load
from hwcost.cli import cli
from hwmodel.energy import build_energy_table
from hwmodel.float_formats import float_variant
from hwmodel.spec import load_arch
from multiplier_lib.library import MultiplierResolver
from nas import checkpoint
from nas import search as search_mod
from nas.search import SearchConfig, run_search


def tiny(**kw) -> SearchConfig:
    base = dict(dataset="synthetic", synthetic_size=32, epochs=2, layers=3, channels=2,
                batch_size=8, multiplier="trunc8u_k6c", backend="cpu", arch="edge",
                energy_weight=0.1, max_steps=1, seed=3)
    base.update(kw)
    return SearchConfig(**base)


def test_cli_two_epoch_search_writes_everything(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "search", "--dataset", "synthetic", "--epochs", "2", "--layers", "3", "--channels",
        "2", "--batch-size", "8", "--multiplier", "trunc8u_k6c", "--backend", "cpu", "--arch",
        "edge", "--energy-weight", "0.1", "--max-steps", "1", "--out", str(out)],
        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    geno = load(out / "genotype.json")
    assert geno.multiplier == "trunc8u_k6c" and len(geno.normal) == 8
    rows = list(csv.DictReader((out / "search.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert float(rows[-1]["expected_energy_pj"]) > 0
    est = json.loads((out / "estimate.json").read_text())
    assert est["energy_pj"] > est["arithmetic_pj"] > 0 and est["macs"] > 0


@pytest.mark.parametrize("kw", [
    {}, dict(multiplier=None, multipliers=["exact8u", "trunc8u_k6c", "drum8u_k4"],
             multiplier_sampling="per-conv")], ids=["one-multiplier", "per-conv"])
def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch, kw):
    full = run_search(tiny(**kw), tmp_path / "full")

    class Killed(Exception):
        pass

    def die(epoch, step):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        run_search(tiny(**kw), tmp_path / "cut", progress=die)
    assert checkpoint.load(tmp_path / "cut" / "checkpoint.pt")["epoch"] == 0
    resumed = run_search(tiny(**kw), tmp_path / "cut", resume=True)
    assert resumed == full
    a = checkpoint.load(tmp_path / "full" / "checkpoint.pt")["model"]
    b = checkpoint.load(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert torch.equal(a["alpha_normal"], b["alpha_normal"])
    assert all(torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))
    assert (tmp_path / "full" / "search.csv").read_text() == \
        (tmp_path / "cut" / "search.csv").read_text()


def test_corrupted_checkpoint_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    checkpoint.save(path, {"x": torch.arange(4)})
    assert torch.equal(checkpoint.load(path)["x"], torch.arange(4))
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(HwcostError, match="corrupted"):
        checkpoint.load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(HwcostError, match="not an hwcost checkpoint"):
        checkpoint.load(path)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = search_mod.F.cross_entropy
    calls = {"n": 0}

    def flaky(logits, y):
        calls["n"] += 1
        loss = real(logits, y)
        return loss * float("nan") if calls["n"] > 2 else loss  # 2 calls per step

    monkeypatch.setattr(search_mod.F, "cross_entropy", flaky)
    with pytest.raises(HwcostError, match=r"NaN.*last good checkpoint"):
        run_search(tiny(epochs=3), tmp_path / "nan")
    assert checkpoint.load(tmp_path / "nan" / "checkpoint.pt")["epoch"] == 0


def test_searched_multipliers_are_written_per_edge(tmp_path):
    geno = run_search(tiny(multiplier=None, multipliers=["exact8u", "trunc8u_k8"], epochs=1),
                      tmp_path / "mult")
    saved = load(tmp_path / "mult" / "genotype.json")
    assert saved.normal_multipliers is not None and len(saved.normal_multipliers) == 8
    names = {m for m in saved.normal_multipliers + saved.reduce_multipliers if m}
    assert names and names <= {"exact8u", "trunc8u_k8"}
    assert geno == saved


@pytest.mark.parametrize(("penalty", "extra"), [("additive", {}), ("fbnet", {}),
                                              ("target", {"energy_target": 1.0})])
def test_higher_energy_weight_lowers_expected_energy(tmp_path, penalty, extra):
    def final_energy(weight: float, name: str) -> float:
        run_search(tiny(energy_weight=weight, alpha_lr=0.05, epochs=2, max_steps=2,
                        penalty=penalty, **extra), tmp_path / name)
        rows = list(csv.DictReader((tmp_path / name / "search.csv").open()))
        return float(rows[-1]["expected_energy_pj"])

    assert final_energy(50.0, "heavy") < final_energy(0.0 if penalty != "target" else 1e-9,
                                                      "free")


def test_fbnet_penalty_reaches_the_architecture_gradient():
    """FBNet's form multiplies the cross-entropy: the architect must hand it the real one
    (it used to add the penalty of a zero cross-entropy: exactly nothing)."""
    from nas.architect import Architect
    from nas.energy_penalty import energy_penalty
    from nas.ops import plain_conv
    from nas.search_cnn import SearchCNN

    def alpha_grad(with_penalty: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = SearchCNN(2, 10, 3, conv=plain_conv)
        w_opt = torch.optim.SGD(model.weights(), 0.025)
        a_opt = torch.optim.SGD(model.alphas(), 0.0)      # keep the alphas: read the grad
        energy = lambda: 1e3 * (1 + torch.softmax(model.alpha_normal, -1)[:, 4].sum())  # noqa: E731

        def arch_loss(val, e):
            return energy_penalty(val, e, 2e3, "fbnet", weight=1.0) if with_penalty else val

        arch = Architect(model, lambda m, x, y: F.cross_entropy(m(x), y), a_opt, "first",
                         arch_loss=arch_loss, expected_energy=energy)
        x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
        arch.step(x, y, x, y, 0.025, w_opt)
        return model.alpha_normal.grad.clone()

    plain, penalised = alpha_grad(False), alpha_grad(True)
    assert not torch.allclose(plain, penalised)
    # the energy column (op 4) is pushed down by the penalty relative to the others
    assert (penalised[:, 4] - plain[:, 4]).mean() > (penalised[:, 0] - plain[:, 0]).mean()


def test_bad_settings_are_one_line_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["search", "--dataset", "synthetic", "--multiplier", "nope8u",
                              "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "unknown multiplier" in res.output
    res = runner.invoke(cli, ["search", "--dataset", "synthetic", "--penalty", "target",
                              "--out", str(tmp_path / "y")])
    assert res.exit_code == 1 and "--energy-target" in res.output
    res = runner.invoke(cli, ["search", "--dataset", "cifar10", "--data-dir",
                              str(tmp_path / "none"), "--out", str(tmp_path / "z")])
    assert res.exit_code == 1 and "--download" in res.output


def test_second_order_architect_step_moves_alphas():
    from nas.architect import Architect
    from nas.ops import plain_conv
    from nas.search_cnn import SearchCNN

    torch.manual_seed(0)
    model = SearchCNN(2, 10, 3, conv=plain_conv)
    w_opt = torch.optim.SGD(model.weights(), 0.025, momentum=0.9)
    a_opt = torch.optim.Adam(model.alphas(), 0.01)

    def loss_fn(net, x, y):
        return torch.nn.functional.cross_entropy(net(x), y)

    before = model.alpha_normal.detach().clone()
    w_before = [w.detach().clone() for w in model.weights()]
    arch = Architect(model, loss_fn, a_opt, "second")
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    val = arch.step(x, y, x, y, 0.025, w_opt)
    assert torch.isfinite(val)
    assert torch.isfinite(model.alpha_normal.grad).all()
    assert not torch.equal(model.alpha_normal.detach(), before)
    # the unrolled step must leave the real weights where they were
    assert all(torch.allclose(w, b, atol=1e-6) for w, b in zip(model.weights(), w_before))


def test_fp32_search_runs_in_float_and_is_priced_as_fp32(tmp_path):
    out = tmp_path / "fp32"
    args = ["search", "--dataset", "synthetic", "--epochs", "1", "--layers", "3",
            "--channels", "2", "--batch-size", "8", "--backend", "cpu", "--arch", "edge",
            "--energy-weight", "0.1", "--max-steps", "1"]
    res = CliRunner().invoke(cli, [*args, "--multiplier", "fp32", "--out", str(out)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert load(out / "genotype.json").multiplier == "fp32"
    fp32 = json.loads((out / "estimate.json").read_text())
    res = CliRunner().invoke(cli, [*args, "--multiplier", "exact8u", "--out",
                                   str(tmp_path / "int")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    int8 = json.loads((tmp_path / "int" / "estimate.json").read_text())
    # each run is priced with its own MAC: macs x the MAC energy of its energy table, plus the
    # adds of pooling and element-wise layers (under 5 % here)
    arch = load_arch("edge")
    fp_mac = build_energy_table(float_variant(arch, "fp32"), None).mac()
    int_mac = build_energy_table(arch, MultiplierResolver()("exact8u")).mac()
    assert fp_mac > 3 * int_mac
    for est, mac in ((fp32, fp_mac), (int8, int_mac)):
        assert est["macs"] * mac <= est["arithmetic_pj"] <= 1.05 * est["macs"] * mac
    res = CliRunner().invoke(cli, [*args, "--multipliers", "exact8u,fp32", "--out",
                                   str(tmp_path / "mixed")])
    assert res.exit_code == 1
    assert "fp32 cannot be searched per edge" in res.output and "Traceback" not in res.output


def test_search_config_from_merged_settings():
    cfg = SearchConfig.from_settings({"multipliers": "exact8u, trunc8u_k6c", "epochs": 2,
                                      "data-dir": "d"})
    assert cfg.multipliers == ["exact8u", "trunc8u_k6c"] and cfg.multiplier is None
    assert cfg.data_dir == "d" and cfg.epochs == 2
    with pytest.raises(HwcostError, match="unknown setting 'epoch'") as err:
        SearchConfig.from_settings({"epoch": 2}, source="s.yaml")
    assert err.value.file == "s.yaml"
    with pytest.raises(HwcostError, match="unknown multiplier 'nope8u'"):
        SearchConfig.from_settings({"multiplier": "nope8u"})


@pytest.mark.parametrize("conv", ["plain", "approx", "candidates"])
def test_frozen_weight_architect_step_gives_the_same_alpha_gradients(conv):
    """The first-order step differentiates with the weights frozen: its alpha (and beta)
    gradients are bit-identical to a backward through everything, and it leaves no weight
    gradient behind (the plain backward fills every weight's .grad)."""
    from nas.architect import Architect
    from nas.ops import approx_conv, plain_conv
    from nas.search_cnn import SearchCNN

    def build():
        torch.manual_seed(0)
        if conv == "plain":
            return SearchCNN(2, 10, 3, conv=plain_conv)
        if conv == "approx":
            return SearchCNN(2, 10, 3, conv=approx_conv("trunc8u_k6c", backend="reference"))
        names = ["exact8u", "trunc8u_k6c"]
        return SearchCNN(2, 10, 3, conv=approx_conv(names[0], backend="reference"),
                         multipliers=names,
                         multiplier_conv=lambda ns: approx_conv(ns, backend="reference"))

    def loss_fn(net, x, y):
        logits = net(x)
        return torch.nn.functional.cross_entropy(logits, y), logits

    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    frozen = build()
    arch = Architect(frozen, loss_fn, torch.optim.SGD(frozen.alphas(), 0.0), "first")
    arch.step(x, y, x, y, 0.025, torch.optim.SGD(frozen.weights(), 0.025))
    assert all(w.grad is None for w in frozen.weights())
    assert all(w.requires_grad for w in frozen.weights())          # restored
    assert arch.val_logits is not None and arch.val_logits.shape == (4, 10)
    plain = build()
    plain_loss, _ = loss_fn(plain, x, y)
    plain_loss.backward()                                           # the old way
    assert any(w.grad is not None for w in plain.weights())
    pairs = list(zip(frozen.alphas(), plain.alphas(), strict=True))
    assert len(pairs) == (2 if conv != "candidates" else 4)
    for a, b in pairs:
        assert torch.equal(a.grad, b.grad)


def test_validation_batches_reach_batchnorm_and_quantizers_once_per_step(tmp_path,
                                                                         monkeypatch):
    """Each search step runs one architecture forward on the validation batch and one
    weight forward on the training batch, nothing else (a third, accuracy-only forward in
    train mode used to feed the validation batch to BatchNorm and the quantizer observers
    again): the supernet's forward runs twice per step, and BatchNorm counts two batches."""
    from nas import checkpoint
    from nas.search_cnn import SearchCNN

    calls = []
    forward = SearchCNN.forward

    def counted(self, *a, **k):
        calls.append(self.training)
        return forward(self, *a, **k)

    monkeypatch.setattr(SearchCNN, "forward", counted)

    out = tmp_path / "run"
    args = ["search", "--dataset", "synthetic", "--input-size", "8", "--epochs", "1",
            "--layers", "3", "--channels", "2", "--batch-size", "8", "--backend", "reference",
            "--multiplier", "trunc8u_k6c", "--max-steps", "3", "--out", str(out)]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert calls == [True] * (2 * 3)
    state = checkpoint.load(out / "checkpoint.pt")["model"]
    tracked = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
    assert tracked and set(tracked.values()) == {2 * 3}, sorted(set(tracked.values()))
    rows = list(csv.DictReader(open(out / "search.csv")))
    assert 0.0 <= float(rows[0]["val_acc"]) <= 1.0


@pytest.mark.parametrize("kw", [{}, dict(multiplier=None, multipliers=["exact8u", "drum8u_k4"],
                                         multiplier_sampling="per-conv")],
                         ids=["one-multiplier", "per-conv"])
def test_the_weight_step_runs_with_the_architecture_frozen(tmp_path, monkeypatch, kw):
    """Each step's weight forward and backward leave the alphas and betas out of autograd
    (their gradients there were thrown away, and a per-conv mix kept every candidate's
    output for them); the architecture step before it differentiates them."""
    from nas.search_cnn import SearchCNN

    seen = []
    forward = SearchCNN.forward

    def recording(self, x):
        seen.append(tuple(p.requires_grad for p in self.alphas()))
        return forward(self, x)

    monkeypatch.setattr(SearchCNN, "forward", recording)
    run_search(tiny(epochs=1, max_steps=2, **kw), tmp_path / "run")
    n = 4 if kw else 2
    steps = [s for s in seen if len(s) == n]
    # per step: the architecture forward (alphas live), then the weight forward (frozen)
    assert steps[:4] == [(True,) * n, (False,) * n, (True,) * n, (False,) * n]
