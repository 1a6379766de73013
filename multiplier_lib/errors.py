"""Errors of the multiplier package: refinements of :class:`core.errors.HwcostError`, so the
CLI prints them like any other user mistake while callers can still tell them apart."""

from __future__ import annotations

from core.errors import HwcostError

__all__ = ["HwcostError", "ImportFailed", "NetlistError", "UnknownMultiplier"]


class NetlistError(HwcostError):
    """A structurally invalid gate netlist (undriven net, loop, double driver...)."""


class ImportFailed(HwcostError):
    """A multiplier file could not be read."""


class UnknownMultiplier(HwcostError):
    """A name that is neither in the library nor a built-in parametric family."""
