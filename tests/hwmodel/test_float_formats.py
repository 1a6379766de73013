"""Float baselines: the same design built for float words, priced with the FP MAC."""

from __future__ import annotations

import pytest

from core.arithmetic import FLOAT_FORMATS, float_format
from core.errors import HwcostError
from hwmodel.costing import CostContext, price
from hwmodel.float_formats import float_variant
from hwmodel.spec import load_arch
from hwmodel.workload import Layer

CONV = Layer("conv", "conv", N=1, C=16, M=32, P=8, Q=8, R=3, S=3, multiplier="drum8u_k4")


def test_variant_holds_float_words_in_the_same_rows_and_leaves_the_spec_alone():
    arch = load_arch("eyeriss")
    fp = float_variant(arch, "fp32")
    assert fp.compute.component_class == "fpmac" and fp.compute.attributes["format"] == "fp32"
    for lv, lf in zip(arch.levels, fp.levels):
        assert lf.datawidth == 32 and lf.attributes["datawidth"] == 32
        assert lf.width == max(lv.width, 32)
        if lv.depth is not None and lv.width >= 32:
            # same rows, words 4x wider: a quarter of the words (an 8-bit level)
            assert lf.capacity_words * 32 == lv.capacity_words * lv.datawidth
    assert all(lv.datawidth in (8, 16) for lv in arch.levels)   # the original is untouched
    assert arch.compute.component_class != "fpmac"
    with pytest.raises(HwcostError, match="unknown float format 'fp8'"):
        float_variant(arch, "fp8")
    assert float_format("FP32") is FLOAT_FORMATS["fp32"] and float_format("bf16") is not None
    assert float_format("exact8u") is None and float_format(None) is None
    assert float_variant(arch, FLOAT_FORMATS["fp16"]).compute.attributes["format"] == "fp16"


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16"])
def test_float_estimate_prices_every_mac_with_the_fp_unit(fmt):
    est = price([CONV], fmt, CostContext.for_spec("eyeriss", effort="fast"), "override")
    f = FLOAT_FORMATS[fmt]
    (le,) = est.layers
    # eyeriss is a 45 nm spec: Horowitz's figures apply unscaled; "override" replaces the
    # layer's own multiplier (drum8u_k4): the whole network runs in float
    assert le.multiplier == fmt and est.multiplier == fmt
    assert le.multiply_pj == pytest.approx(CONV.macs * f.multiply_pj)
    assert le.add_pj == pytest.approx(CONV.macs * f.add_pj)


def test_float_words_cost_more_memory_than_int8_and_bf16_multiplies_cheapest():
    context = CostContext.for_spec("eyeriss", effort="fast")
    int8 = price([CONV], None, context, "override")
    fp32, fp16, bf16 = (price([CONV], f, context, "override") for f in ("fp32", "fp16", "bf16"))
    assert fp32.total("memory_pj") > fp16.total("memory_pj") > int8.total("memory_pj")
    assert bf16.total("memory_pj") == pytest.approx(fp16.total("memory_pj"))
    assert (bf16.total("multiply_pj") < fp16.total("multiply_pj")
            < fp32.total("multiply_pj"))
    assert FLOAT_FORMATS["bf16"].multiply_pj == pytest.approx(1.1 * 64 / 121)


def test_a_layer_keeps_its_own_multiplier_unless_overridden():
    """per_edge="keep" leaves drum8u_k4 on the layer (integer design), "override" runs it in
    fp32 on the float design: the two are different designs, not a relabelling."""
    context = CostContext.for_spec("eyeriss", effort="fast")
    kept = price([CONV], "fp32", context)
    forced = price([CONV], "fp32", context, "override")
    assert kept.layers[0].multiplier == "drum8u_k4" and forced.layers[0].multiplier == "fp32"
    assert forced.total("memory_pj") > kept.total("memory_pj")
    assert kept.total("energy_pj") == pytest.approx(
        price([CONV], "drum8u_k4", context, "override").total("energy_pj"), rel=1e-12)
