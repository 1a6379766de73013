"""The DARTS evaluation network as layers, checked against PyTorch and against hand counts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import networkx as nx
import pytest

from core.errors import HwcostError
from darts.cellgraph import NetworkConfig, build_graph, list_layers, mac_count, parameter_count
from darts.genotype import Genotype, validate
from darts.genotype_io import load
from darts.op_specs import factorized_reduce

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def darts_v2() -> Genotype:
    return load(EXAMPLES / "darts_v2.json")


@pytest.fixture(scope="module")
def small() -> Genotype:
    return load(EXAMPLES / "small_genotype.json")


# Every op at least once, both cell types with 3 nodes, a concat that skips a node.
ALL_OPS = Genotype(
    normal=[("sep_conv_5x5", 0), ("dil_conv_5x5", 1), ("avg_pool_3x3", 2),
            ("max_pool_3x3", 0), ("sep_conv_3x3", 3), ("dil_conv_3x3", 1)],
    normal_concat=[3, 4],
    reduce=[("sep_conv_5x5", 0), ("dil_conv_5x5", 1), ("avg_pool_3x3", 1),
            ("dil_conv_3x3", 2), ("skip_connect", 0), ("sep_conv_3x3", 3)],
    reduce_concat=[2, 3, 4],
)


# ---------------------------------------------------------------------------------------------
# An independent PyTorch build of the DARTS CIFAR evaluation network (written for this test
# from the DARTS paper's definitions, no auxiliary head), used as ground truth.

torch = pytest.importorskip("torch")
nn = torch.nn


class FactorizedReduce(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.relu = nn.ReLU()
        self.a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.b = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.a(x), self.b(x[:, :, 1:, 1:])], dim=1))


def relu_conv_bn(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


def torch_op(name: str, c: int, stride: int) -> nn.Module:
    k = int(name[-1]) if name[-1].isdigit() else 0
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if name.startswith("sep_conv"):
        return nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
            nn.ReLU(), nn.Conv2d(c, c, k, 1, k // 2, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
    if name.startswith("dil_conv"):
        return nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, k, stride, k - 1, dilation=2, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
    raise AssertionError(name)


class TorchCell(nn.Module):
    def __init__(self, g: Genotype, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else relu_conv_bn(c_pp, c)
        self.pre1 = relu_conv_bn(c_p, c)
        edges = g.reduce if reduction else g.normal
        self.concat = g.reduce_concat if reduction else g.normal_concat
        self.indices = [i for _, i in edges]
        self.ops = nn.ModuleList(torch_op(op, c, 2 if reduction and i < 2 else 1)
                                 for op, i in edges)

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for k in range(len(self.ops) // 2):
            states.append(sum(self.ops[e](states[self.indices[e]]) for e in (2 * k, 2 * k + 1)))
        return torch.cat([states[j] for j in self.concat], dim=1)


class TorchNetwork(nn.Module):
    def __init__(self, g: Genotype, c: int, classes: int, layers: int):
        super().__init__()
        c_stem = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        c_pp, c_p = c_stem, c_stem
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            self.cells.append(TorchCell(g, c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, c * len(g.reduce_concat if reduction else g.normal_concat)
        self.classifier = nn.Linear(c_p, classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1.mean(dim=(2, 3)))


def torch_counts(g: Genotype, cfg: NetworkConfig) -> tuple[int, int, int]:
    """(parameters, parameters without BN, MACs by forward hooks) of the PyTorch network."""
    # On the meta device: shapes and parameter counts without the (slow) arithmetic.
    with torch.device("meta"):
        net = TorchNetwork(g, cfg.channels, cfg.classes, cfg.layers)
    params = sum(p.numel() for p in net.parameters())
    bn = sum(p.numel() for m in net.modules() if isinstance(m, nn.BatchNorm2d)
             for p in m.parameters())
    macs = []

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs.append(output.numel() * module.in_channels // module.groups * kh * kw)
        else:
            macs.append(output.numel() * module.in_features)

    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            m.register_forward_hook(hook)
    with torch.no_grad():
        out = net(torch.zeros(1, 3, cfg.input_size, cfg.input_size, device="meta"))
    assert out.shape == (1, cfg.classes)
    return params, params - bn, sum(macs)


# ---------------------------------------------------------------------------------------------


def test_darts_v2_matches_the_paper_and_pytorch(darts_v2):
    cfg = NetworkConfig()  # 20 cells, 36 channels, 10 classes, 32x32
    params = parameter_count(darts_v2, cfg)
    # DARTS reports 3.3M parameters for this network (auxiliary head excluded).
    assert abs(params - 3.3e6) / 3.3e6 < 0.02
    t_params, t_params_no_bn, t_macs = torch_counts(darts_v2, cfg)
    assert params == t_params == 3_349_342
    assert parameter_count(darts_v2, cfg, include_bn=False) == t_params_no_bn
    assert mac_count(darts_v2, cfg) == t_macs


@pytest.mark.parametrize("name", ["small", "all_ops"])
def test_other_genotypes_match_pytorch(name, small):
    g = small if name == "small" else ALL_OPS
    cfg = NetworkConfig.from_genotype(g) if name == "small" else NetworkConfig(
        layers=5, channels=6, input_size=16, classes=7)
    t_params, t_params_no_bn, t_macs = torch_counts(g, cfg)
    assert parameter_count(g, cfg) == t_params
    assert parameter_count(g, cfg, include_bn=False) == t_params_no_bn
    assert mac_count(g, cfg) == t_macs


def test_small_genotype_by_hand(small):
    # examples/small_genotype.json: 3 cells of C=8 on 8x8 inputs, 10 classes.  Reductions sit
    # at 3//3 = 1 and 2*3//3 = 2, so: cell0 normal (C=8, 8x8), cell1 reduce (C=16, 8x8 -> 4x4),
    # cell2 reduce after a reduce (C=32, 4x4 -> 2x2; its input 0 is cell0's 8x8 output, hence a
    # FactorizedReduce).  Both cell types concat nodes 2 and 3: outputs have 2*C channels.
    # Normal: node2 = sep3(in0) + skip(in1); node3 = skip(node2) + sep3(in1).
    # Reduce: node2 = maxpool(in0, s2) + skip(in1, s2 = FactorizedReduce);
    #         node3 = dil3(node2) + sep3(in0, s2).
    cfg = NetworkConfig.from_genotype(small)
    assert (cfg.layers, cfg.channels, cfg.input_size, cfg.classes) == (3, 8, 8, 10)

    def sep(c, hw):  # two (depthwise 3x3 + pointwise) at output size hw
        return 2 * (hw * c * 9 + hw * c * c)

    def dil(c, hw):
        return hw * c * 9 + hw * c * c

    def fr(c_in, c_out, hw):  # two 1x1 convs, each c_out/2 outputs at hw
        return 2 * hw * c_in * (c_out // 2)

    stem = 64 * 24 * 3 * 9                                   # 3 -> 24 channels, 8x8, 3x3
    cell0 = 64 * 24 * 8 * 2 + 2 * sep(8, 64)                 # two 1x1 pre (24 -> 8)
    cell1 = (64 * 24 * 16 + 64 * 16 * 16                     # pre0 24 -> 16, pre1 16 -> 16
             + fr(16, 16, 16) + dil(16, 16) + sep(16, 16))   # ops at 4x4
    cell2 = (fr(16, 32, 16) + 16 * 32 * 32                   # pre0 FR 8x8 -> 4x4; pre1 at 4x4
             + fr(32, 32, 4) + dil(32, 4) + sep(32, 4))      # ops at 2x2
    fc = 64 * 10
    assert mac_count(small) == stem + cell0 + cell1 + cell2 + fc == 210_176

    # Parameters: conv weights + 2 per BN channel + classifier weight and bias.
    p_sep = lambda c: 2 * (9 * c + c * c) + 4 * c  # noqa: E731
    p_dil = lambda c: 9 * c + c * c + 2 * c  # noqa: E731
    p_fr = lambda ci, co: ci * co + 2 * co  # noqa: E731  (two halves of ci * co/2)
    p_rcb = lambda ci, co: ci * co + 2 * co  # noqa: E731
    params = (27 * 24 + 48
              + 2 * p_rcb(24, 8) + 2 * p_sep(8)
              + p_rcb(24, 16) + p_rcb(16, 16) + p_fr(16, 16) + p_dil(16) + p_sep(16)
              + p_fr(16, 32) + p_rcb(32, 32) + p_fr(32, 32) + p_dil(32) + p_sep(32)
              + 64 * 10 + 10)
    assert parameter_count(small) == params == 11_538

    layers = list_layers(small)
    kinds = [layer.kind for layer in layers]
    # stem; cell0: 2 pre + 2x4 sep + 2 adds; cell1: 2 pre + pool + 2 FR + add + 2 dil + 4 sep
    # + add; cell2: 3 pre (FR has 2) + the same 12; gap; classifier.
    assert len(layers) == 1 + 12 + 13 + 14 + 2
    assert kinds.count("pool") == 3 and kinds.count("eltwise") == 6
    assert kinds.count("fc") == 1 and kinds.count("conv") == 42 - 10
    assert [layer.name for layer in layers[:5]] == [
        "stem.conv", "cell0.normal.pre0.conv", "cell0.normal.pre1.conv",
        "cell0.normal.edge0.sep_conv_3x3.dw1", "cell0.normal.edge0.sep_conv_3x3.pw1"]
    by_name = {layer.name: layer for layer in layers}
    dw = by_name["cell1.reduce.edge3.sep_conv_3x3.dw1"]
    assert (dw.groups, dw.C, dw.M, dw.P, dw.R, dw.stride) == (16, 1, 1, 4, 3, (2, 2))
    assert by_name["cell1.reduce.edge3.sep_conv_3x3.dw2"].stride == (1, 1)
    dil_dw = by_name["cell2.reduce.edge2.dil_conv_3x3.dw"]
    assert (dil_dw.dilation, dil_dw.P, dil_dw.groups) == ((2, 2), 2, 32)
    fr2 = by_name["cell2.reduce.pre0.fr.conv2"]
    assert (fr2.C, fr2.M, fr2.P, fr2.stride, fr2.extra["input_offset"]) == (16, 16, 4, (2, 2), 1)
    pool = by_name["cell1.reduce.edge0.max_pool_3x3.pool"]
    assert (pool.groups, pool.P, pool.R, pool.stride, pool.extra["op"]) == (16, 4, 3, (2, 2),
                                                                            "max")
    add = by_name["cell2.reduce.node3.add"]
    assert add.extra["elements"] == 32 * 2 * 2 and (add.groups, add.P) == (32, 2)
    gap = by_name["gap.pool"]
    assert (gap.groups, gap.P, gap.R, gap.S, gap.extra["op"]) == (64, 1, 2, 2, "avg")
    fc_layer = by_name["classifier.fc"]
    assert (fc_layer.C, fc_layer.M, fc_layer.macs) == (64, 10, 640)


def test_multipliers_land_on_their_edges(small):
    g = dataclasses.replace(small, reduce_multipliers=[None, "mitchell8u", "bam8u_h2v6", None])
    layers = list_layers(g)
    for layer in layers:
        if layer.kind in ("pool", "eltwise"):
            assert layer.multiplier is None, layer.name
        elif layer.name.startswith(("cell0.normal.edge0.", "cell2.normal.edge0.")):
            assert layer.multiplier == "drum8u_k4", layer.name
        elif ".normal.edge3." in layer.name:
            assert layer.multiplier == "trunc8u_k6c", layer.name
        elif ".reduce.edge1." in layer.name:
            assert layer.multiplier == "mitchell8u", layer.name
        elif ".reduce.edge2." in layer.name:
            assert layer.multiplier == "bam8u_h2v6", layer.name
        else:  # stem, preprocessing, classifier, edges without their own multiplier
            assert layer.multiplier == "exact8u", layer.name
    assert sum(layer.multiplier == "drum8u_k4" for layer in layers) == 4  # one sep_conv
    assert sum(layer.multiplier == "mitchell8u" for layer in layers) == 4  # two FRs
    bare = dataclasses.replace(g, multiplier=None, normal_multipliers=None,
                               reduce_multipliers=None)
    assert all(layer.multiplier is None for layer in list_layers(bare))


def test_graph_structure(darts_v2):
    cfg = NetworkConfig()
    graph = build_graph(darts_v2, cfg)
    assert nx.is_directed_acyclic_graph(graph)
    assert nx.is_weakly_connected(graph)
    for u, _, data in graph.edges(data=True):
        assert data["shape"] == graph.nodes[u]["shape"]
    # Cells 6 and 13 reduce: size halves and C doubles there; every cell output is 4*C wide.
    assert graph.graph["plan"].reduction_cells == (6, 13)
    outs = [graph.nodes[f"cell{i}.{'reduce' if i in (6, 13) else 'normal'}.out"]["shape"]
            for i in range(20)]
    assert outs[0] == (1, 144, 32, 32) and outs[5] == (1, 144, 32, 32)
    assert outs[6] == (1, 288, 16, 16) and outs[12] == (1, 288, 16, 16)
    assert outs[13] == (1, 576, 8, 8) and outs[19] == (1, 576, 8, 8)
    assert graph.nodes["cell7.normal.pre0"]["op"] == "FactorizedReduce"
    assert graph.nodes["cell8.normal.pre0"]["op"] == "ReLUConvBN"
    assert graph.nodes["cell6.reduce.edge0"]["stride"] == 2
    assert graph.nodes["cell6.reduce.edge2"]["stride"] == 1  # reads node 2, already reduced
    assert graph.nodes["classifier"]["shape"] == (1, 10)
    names = [layer.name for layer in list_layers(darts_v2, cfg)]
    assert len(names) == len(set(names))
    # list order is topological: every layer of a node comes after those of its inputs.
    order = {}
    for node in nx.topological_sort(graph):
        for layer in graph.nodes[node]["layers"]:
            order[layer.name] = node
    position = {name: i for i, name in enumerate(names)}
    for u, v in graph.edges():
        if graph.nodes[u]["layers"] and graph.nodes[v]["layers"]:
            assert (position[graph.nodes[u]["layers"][-1].name]
                    < position[graph.nodes[v]["layers"][0].name])


def test_config_precedence_and_batch(small):
    assert NetworkConfig.from_genotype(small, channels=16, layers=None).channels == 16
    assert NetworkConfig.from_genotype(small, channels=16).layers == 3
    assert NetworkConfig.from_genotype(Genotype([], [], [], [])) == NetworkConfig()
    cfg = NetworkConfig.from_genotype(small)
    assert mac_count(small, dataclasses.replace(cfg, batch=4)) == 4 * mac_count(small, cfg)
    assert list_layers(small, dataclasses.replace(cfg, batch=4))[0].N == 4


def test_config_and_shape_errors(small):
    with pytest.raises(HwcostError, match="network channels must be a positive integer"):
        NetworkConfig(channels=0)
    # Reductions double C first, so a network's FactorizedReduce always gets even channels;
    # the block on its own still refuses odd ones (DARTS would silently drop one).
    with pytest.raises(HwcostError, match="FactorizedReduce needs an even channel count"):
        factorized_reduce("x", 8, 7, (8, 8))
    assert mac_count(small, NetworkConfig(layers=3, channels=7, input_size=8)) > 0
    with pytest.raises(HwcostError, match="FactorizedReduce needs an even input size"):
        mac_count(small, NetworkConfig(layers=3, channels=8, input_size=6))


def test_none_edges_are_left_out(small):
    g = dataclasses.replace(small, normal=[("sep_conv_3x3", 0), ("none", 1),
                                           ("skip_connect", 2), ("sep_conv_3x3", 1)])
    graph = build_graph(g)
    assert "cell0.normal.edge1" not in graph
    assert graph.nodes["cell0.normal.node2"]["layers"] == []  # one input: nothing to add
    assert len(graph.nodes["cell0.normal.node3"]["layers"]) == 1
    with pytest.raises(HwcostError, match="DARTS never derives 'none'"):
        validate(g)  # a derived genotype may not keep it; only build_graph tolerates it
