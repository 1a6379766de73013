"""The PyTorch DARTS networks: counts against the layer model, derivation, multiplier search."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from core.errors import HwcostError  # noqa: E402
from darts.cellgraph import NetworkConfig, mac_count, parameter_count  # noqa: E402
from darts.genotype import PRIMITIVES, Genotype, validate  # noqa: E402
from darts.genotype_io import load  # noqa: E402
from darts.macro import preprocess_specs  # noqa: E402
from darts.op_specs import OP_SPECS, op_block, stages_block  # noqa: E402
from multiplier_lib.emulate.layers import ApproxConv2d  # noqa: E402
from nas.augment_cnn import AugmentCNN  # noqa: E402
from nas.ops import (  # noqa: E402
    OPS,
    BlockBatchNorm2d,
    FactorizedReduce,
    Identity,
    Zero,
    approx_conv,
    build_op,
    plain_conv,
)
from nas.search_cells import edge_index, n_edges  # noqa: E402
from nas.search_cnn import SearchCNN  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MULTS = ["exact8u", "trunc8u_k6"]

# Every op, a strided skip (FactorizedReduce), a 'none' edge and a partial concat.
ALL_OPS = Genotype(
    normal=[("sep_conv_5x5", 0), ("dil_conv_5x5", 1), ("avg_pool_3x3", 2),
            ("max_pool_3x3", 0), ("sep_conv_3x3", 3), ("dil_conv_3x3", 1)],
    normal_concat=[3, 4],
    reduce=[("sep_conv_5x5", 0), ("dil_conv_5x5", 1), ("avg_pool_3x3", 1),
            ("none", 2), ("skip_connect", 0), ("sep_conv_3x3", 3)],
    reduce_concat=[2, 3, 4],
)


@pytest.fixture(scope="module")
def darts_v2() -> Genotype:
    return load(EXAMPLES / "darts_v2.json")


def _params(module: nn.Module, skip: str | None = None) -> int:
    return sum(p.numel() for name, p in module.named_parameters()
               if skip is None or not name.startswith(skip))


# ---------------------------------------------------------------------------------------------
# Evaluation network against the paper and against darts.cellgraph


def test_darts_v2_has_the_papers_3_3m_parameters(darts_v2):
    model = AugmentCNN(darts_v2, C=36, n_classes=10, n_layers=20, auxiliary=True)
    # DARTS reports parameters without the auxiliary head (its count_parameters_in_MB skips
    # it): the head only exists during training.  With it the network has ~3.83M.
    count = _params(model, skip="aux_head")
    assert abs(count - 3.3e6) / 3.3e6 < 0.02, count
    assert model.aux_head is not None
    assert _params(model) - count == _params(model.aux_head) > 400_000


def test_darts_v2_matches_cellgraph_parameters_and_macs(darts_v2, count_forward):
    config = NetworkConfig()
    model = AugmentCNN(darts_v2)
    assert _params(model) == parameter_count(darts_v2, config) == 3_349_342
    counts = count_forward(model, torch.randn(1, 3, 32, 32))
    conv, fc = counts.conv, counts.fc
    # mac_count covers every conv and the classifier (576 x 10); pools/adds have no MACs
    assert fc == 576 * 10
    assert conv == mac_count(darts_v2, config) - fc
    assert conv + fc == mac_count(darts_v2, config)


def test_every_op_matches_cellgraph(count_forward):
    config = NetworkConfig(layers=5, channels=8, input_size=16, classes=7)
    model = AugmentCNN(ALL_OPS, C=8, n_classes=7, n_layers=5, input_size=16)
    assert _params(model) == parameter_count(ALL_OPS, config)
    counts = count_forward(model, torch.randn(1, 3, 16, 16))
    assert counts.conv + counts.fc == mac_count(ALL_OPS, config)


def test_auxiliary_head_and_drop_path():
    model = AugmentCNN(ALL_OPS, C=4, n_classes=5, n_layers=4, auxiliary=True, drop_path=0.2)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    logits, aux = model(x)
    assert logits.shape == aux.shape == (2, 5)
    drops = [m for m in model.modules() if type(m).__name__ == "DropPath"]
    assert drops and all(m.p == 0.2 for m in drops)
    model.drop_path_prob(0.0)
    assert all(m.p == 0.0 for m in drops)
    model.eval()
    assert model(x).shape == (2, 5)
    with pytest.raises(HwcostError, match="auxiliary head"):
        AugmentCNN(ALL_OPS, C=4, n_layers=4, auxiliary=True, input_size=16)


def test_augment_honours_per_edge_multipliers():
    genotype = Genotype(
        normal=[("sep_conv_3x3", 0), ("skip_connect", 1)], normal_concat=[2],
        reduce=[("dil_conv_3x3", 0), ("skip_connect", 1)], reduce_concat=[2],
        multiplier="exact8u", normal_multipliers=["trunc8u_k6", None],
        reduce_multipliers=[None, "trunc8u_k6"])
    model = AugmentCNN(genotype, C=4, n_layers=3, input_size=8,
                       multiplier_conv=lambda name: approx_conv(name, backend="reference"))

    def names(module: nn.Module) -> set[str]:
        return {m.multiplier.name for m in module.modules() if isinstance(m, ApproxConv2d)}

    normal, reduce = model.cells[0], model.cells[1]
    assert names(model.stem) == names(normal.preproc0) == {"exact8u"}
    assert names(normal.ops[0]) == {"trunc8u_k6"}
    assert isinstance(normal.ops[1], Identity)
    assert names(reduce.ops[0]) == {"exact8u"}          # null falls back to 'multiplier'
    assert names(reduce.ops[1]) == {"trunc8u_k6"}       # strided skip: FactorizedReduce
    assert not any(type(m) is nn.Conv2d for m in model.modules())
    model.eval()
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 10)


# ---------------------------------------------------------------------------------------------
# Ops


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", PRIMITIVES)
def test_op_shapes(name, stride):
    op = OPS[name](4, stride, True, plain_conv)
    y = op(torch.randn(2, 4, 8, 8))
    assert y.shape == (2, 4, 8 // stride, 8 // stride)
    if name == "none":
        assert isinstance(op, Zero) and not y.any()
    if name == "skip_connect":
        assert isinstance(op, Identity if stride == 1 else FactorizedReduce)


def _conv_macs(layers) -> int:
    return sum(layer.macs for layer in layers if layer.kind == "conv")


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", PRIMITIVES)
def test_every_primitive_matches_its_op_spec(name, stride, count_forward):
    """The torch module and the hardware layers of each primitive come from one spec: MACs
    (counted with hooks on the modules), parameters and output shape agree."""
    assert list(OP_SPECS) == PRIMITIVES
    c, side, batch = 6, 8, 2
    op = OPS[name](c, stride, True, plain_conv)
    block = op_block(name, "op", c, (side, side), stride, batch=batch)
    x = torch.randn(batch, c, side, side)
    counts = count_forward(op, x)
    assert counts.conv == _conv_macs(block.layers)
    assert (counts.conv > 0) == OP_SPECS[name].multiplies(stride) == (
        name.startswith(("sep", "dil")) or (name == "skip_connect" and stride == 2))
    assert _params(op) == block.weight_params + block.bn_params
    with torch.no_grad():
        assert op(x).shape == (batch, block.out_channels, *block.out_hw)


@pytest.mark.parametrize("reduction_prev", [False, True])
def test_preprocessing_matches_its_op_spec(reduction_prev, count_forward):
    modules = []
    for (spec, stride), c_in in zip(preprocess_specs(reduction_prev), (10, 12)):
        module = build_op(spec, c_in, 6, stride, True, plain_conv)
        block = stages_block(spec.stages, "pre", c_in, 6, (8, 8), stride, batch=3)
        x = torch.randn(3, c_in, 8, 8)
        assert count_forward(module, x).conv == _conv_macs(block.layers) > 0
        assert _params(module) == block.weight_params + block.bn_params
        with torch.no_grad():
            assert module(x).shape == (3, 6, *block.out_hw)
        modules.append(module)
    # input 0 after a reduction cell is twice the size: a FactorizedReduce halves it
    assert isinstance(modules[0], FactorizedReduce) == reduction_prev
    assert not isinstance(modules[1], FactorizedReduce)


def test_approx_conv_builds_approximate_layers():
    exact = OPS["sep_conv_3x3"](4, 2, False, plain_conv)
    approx = OPS["sep_conv_3x3"](4, 2, False, approx_conv("trunc8u_k6", backend="reference"))
    convs = [m for m in approx.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(isinstance(m, ApproxConv2d) for m in convs)
    assert {m.multiplier.name for m in convs} == {"trunc8u_k6"}
    assert all(m.bias is None for m in convs)
    assert not any(isinstance(m, ApproxConv2d) for m in exact.modules())
    x = torch.randn(1, 4, 8, 8)
    assert approx(x).shape == exact(x).shape == (1, 4, 4, 4)


# ---------------------------------------------------------------------------------------------
# Search network


def test_edge_index_order():
    order = [(k, j) for k in range(4) for j in range(k + 2)]
    assert [edge_index(k, j) for k, j in order] == list(range(14)) and n_edges(4) == 14
    assert edge_index(1, 2) == 4 and edge_index(3, 0) == 9
    with pytest.raises(ValueError):
        edge_index(0, 2)


def test_search_forward_and_parameter_split():
    torch.manual_seed(0)
    model = SearchCNN(C=4, n_classes=10, n_layers=3)
    assert model.reduction_cells == (1, 2)
    assert model.alpha_normal.shape == model.alpha_reduce.shape == (14, len(PRIMITIVES))
    assert model.alpha_normal.abs().max() < 0.01
    weights, alphas = list(model.weights()), list(model.alphas())
    assert len(alphas) == 2
    assert {id(p) for p in weights}.isdisjoint(id(p) for p in alphas)
    assert len(weights) + len(alphas) == len(list(model.parameters()))
    y = model(torch.randn(2, 3, 8, 8))
    assert y.shape == (2, 10)
    F.cross_entropy(y, torch.tensor([1, 2])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in alphas)
    genotype = model.genotype()
    validate(genotype)
    assert genotype.normal_multipliers is None
    assert genotype.normal_concat == genotype.reduce_concat == [2, 3, 4, 5]


def _dominant(rows: dict[int, tuple[str, float]], n_ops: int = len(PRIMITIVES),
              none: dict[int, float] | None = None) -> torch.Tensor:
    alpha = torch.zeros(14, n_ops)
    for edge, (op, strength) in rows.items():
        alpha[edge, PRIMITIVES.index(op)] = strength
    for edge, strength in (none or {}).items():
        alpha[edge, PRIMITIVES.index("none")] = strength
    return alpha


def test_hand_set_alphas_derive_the_expected_genotype(darts_v2):
    model = SearchCNN(C=4, n_layers=3)
    e = edge_index
    # DARTS_V2's edges, each made dominant on its edge; per node the first listed edge is
    # the stronger one (DARTS lists the stronger first).
    normal = {}
    reduce = {}
    for target, cell in ((normal, darts_v2.normal), (reduce, darts_v2.reduce)):
        for i, (op, j) in enumerate(cell):
            target[e(i // 2, j)] = (op, 6.0 if i % 2 == 0 else 5.0)
    # a decoy: 'none' dominates normal edge (node 3, input 1), with a weak sep_conv_5x5 under
    # it; its best non-'none' weight is below the others', so DARTS must not keep it
    normal_alpha = _dominant(normal, none={e(3, 1): 9.0})
    normal_alpha[e(3, 1), PRIMITIVES.index("sep_conv_5x5")] = 4.0
    model.set_alphas(normal_alpha, _dominant(reduce))
    genotype = model.genotype()
    assert genotype.normal == darts_v2.normal
    assert genotype.reduce == darts_v2.reduce
    assert genotype.normal_concat == [2, 3, 4, 5]

    # node 0 has exactly two inputs: both are kept, and a 'none'-dominated edge gets its
    # best real op rather than 'none'
    alpha = _dominant({e(0, 0): ("dil_conv_5x5", 3.0)}, none={e(0, 1): 8.0})
    alpha[e(0, 1), PRIMITIVES.index("avg_pool_3x3")] = 1.0
    model.set_alphas(alpha, alpha)
    assert model.genotype().normal[:2] == [("dil_conv_5x5", 0), ("avg_pool_3x3", 1)]


@pytest.fixture(scope="module")
def mult_search():
    torch.manual_seed(1)
    return SearchCNN(C=2, n_layers=3, multipliers=MULTS,
                     multiplier_conv=lambda name: approx_conv(name, backend="reference"))


def test_multiplier_search_network_structure(mult_search):
    model = mult_search
    assert model.beta_normal.shape == model.beta_reduce.shape == (14, 2)
    mixed = model.cells[0].edges[0]
    assert mixed.n_candidates == 2
    by_op = dict(zip(PRIMITIVES, mixed.ops))
    for name in ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"):
        op = by_op[name]
        assert mixed.multiplying[PRIMITIVES.index(name)]
        convs = [m for m in op.modules() if isinstance(m, ApproxConv2d)]
        # built once: one weight tensor per conv, every candidate evaluated by that conv
        assert len(convs) == (4 if name.startswith("sep") else 2)
        assert all([c.name for c in m.candidates] == MULTS for m in convs)
        bns = [m for m in op.modules() if isinstance(m, (nn.BatchNorm2d, BlockBatchNorm2d))]
        assert bns and all(isinstance(m, BlockBatchNorm2d) and m.n_blocks == 2 for m in bns)
    for name in ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"):
        assert not mixed.multiplying[PRIMITIVES.index(name)]  # nothing to multiply
        assert not any(isinstance(m, (nn.Conv2d, BlockBatchNorm2d))
                       for m in by_op[name].modules())
    strided = model.cells[1].edges[0]
    skip = strided.ops[PRIMITIVES.index("skip_connect")]
    assert isinstance(skip, FactorizedReduce) and isinstance(skip.bn, BlockBatchNorm2d)
    assert strided.multiplying[PRIMITIVES.index("skip_connect")]  # FactorizedReduce multiplies
    # the unsearched stem and preprocessing stay plain single-multiplier layers
    assert all(m.candidates is None for m in model.stem.modules()
               if isinstance(m, ApproxConv2d))
    assert not any(isinstance(m, BlockBatchNorm2d) for m in model.cells[0].preproc0.modules())


def test_multiplier_search_gradients_and_derivation(mult_search):
    model = mult_search
    model.zero_grad()
    y = model(torch.randn(2, 3, 8, 8))
    assert y.shape == (2, 10)
    F.cross_entropy(y, torch.tensor([3, 7])).backward()
    named = dict(model.named_alphas())
    assert set(named) == {"alpha_normal", "alpha_reduce", "beta_normal", "beta_reduce"}
    for name, p in named.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name

    e = edge_index
    normal = {e(0, 0): ("sep_conv_3x3", 6.0), e(0, 1): ("max_pool_3x3", 5.0),
              e(1, 2): ("dil_conv_5x5", 6.0), e(1, 0): ("sep_conv_5x5", 5.0),
              e(2, 1): ("dil_conv_3x3", 6.0), e(2, 3): ("skip_connect", 5.0),
              e(3, 4): ("sep_conv_3x3", 6.0), e(3, 2): ("sep_conv_3x3", 5.0)}
    reduce = {e(0, 0): ("skip_connect", 6.0), e(0, 1): ("sep_conv_5x5", 5.0),
              e(1, 2): ("skip_connect", 6.0), e(1, 1): ("avg_pool_3x3", 5.0),
              e(2, 0): ("dil_conv_3x3", 6.0), e(2, 3): ("sep_conv_3x3", 5.0),
              e(3, 4): ("dil_conv_5x5", 6.0), e(3, 1): ("max_pool_3x3", 5.0)}
    model.set_alphas(_dominant(normal), _dominant(reduce))
    beta_n = torch.zeros(14, 2)
    beta_r = torch.zeros(14, 2)
    beta_n[[e(0, 0), e(1, 0), e(3, 2)], 1] = 3.0      # trunc on these, exact elsewhere
    beta_n[[e(1, 2), e(2, 1), e(3, 4)], 0] = 3.0
    beta_r[[e(0, 0), e(2, 3)], 1] = 3.0
    beta_r[[e(0, 1), e(2, 0), e(3, 4)], 0] = 3.0
    model.set_betas(beta_n, beta_r)
    genotype = model.genotype()
    validate(genotype)
    assert genotype.normal == [("sep_conv_3x3", 0), ("max_pool_3x3", 1),
                               ("dil_conv_5x5", 2), ("sep_conv_5x5", 0),
                               ("dil_conv_3x3", 1), ("skip_connect", 3),
                               ("sep_conv_3x3", 4), ("sep_conv_3x3", 2)]
    assert genotype.normal_multipliers == ["trunc8u_k6", None, "exact8u", "trunc8u_k6",
                                           "exact8u", None, "exact8u", "trunc8u_k6"]
    # reduce: the skip from input 0 is a strided FactorizedReduce (multiplies); the skip
    # from node 2 is an identity (does not)
    assert genotype.reduce_multipliers == ["trunc8u_k6", "exact8u", None, None,
                                           "exact8u", "trunc8u_k6", "exact8u", None]


def test_multipliers_must_not_be_empty():
    with pytest.raises(HwcostError):
        SearchCNN(C=2, n_layers=3, multipliers=[])
    with pytest.raises(HwcostError):
        SearchCNN(C=2, n_layers=3).set_betas(torch.zeros(14, 2), torch.zeros(14, 2))
