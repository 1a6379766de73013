"""Timeloop's Eyeriss-like example (AlexNet conv1 and its published mapping), shared by the
model and mapper tests."""

from __future__ import annotations

import pytest

from hwmodel.arch import Architecture, ComputeUnit, StorageLevel
from hwmodel.mapping import LevelMapping, Mapping
from hwmodel.workload import Layer, Workload

W, I, O = "Weights", "Inputs", "Outputs"  # noqa: E741 (Timeloop letters)


@pytest.fixture
def eyeriss_like() -> Architecture:
    def lv(name, depth, inst, fx=1, fy=1, keep=None):
        return StorageLevel(name, "SRAM", {}, depth, 16, 16, instances=inst, fanout_x=fx,
                            fanout_y=fy, keep=keep)

    return Architecture("eyeriss_like", [
        lv("DRAM", None, 1), lv("shared_glb", 65536, 1, fx=14, keep=frozenset({I, O})),
        lv("DummyBuffer", 16, 14, fy=12, keep=frozenset()),
        lv("ifmap_spad", 12, 168, keep=frozenset({I})),
        lv("weights_spad", 192, 168, keep=frozenset({W})),
        lv("psum_spad", 16, 168, keep=frozenset({O}))], ComputeUnit("mac", "intmac", {}, 168))


@pytest.fixture
def alexnet_conv1() -> Workload:
    return Layer("alexnet_conv1", "conv", C=3, M=96, P=55, Q=55, R=11, S=11,
                 stride=(4, 4)).workload()


@pytest.fixture
def timeloop_alexnet_mapping() -> Mapping:
    """The mapping of Timeloop's reference statistics for AlexNet conv1 on Eyeriss-like."""
    return Mapping([
        LevelMapping([("Q", 55), ("C", 3)], keep=frozenset({W, I, O})),
        LevelMapping([("P", 55)], spatial_x=[("M", 12)], keep=frozenset({I, O})),
        LevelMapping([], spatial_y=[("S", 11)], keep=frozenset()),
        LevelMapping([], keep=frozenset({I})),
        LevelMapping([("R", 11)], keep=frozenset({W})),
        LevelMapping([("M", 8)], keep=frozenset({O}))])
