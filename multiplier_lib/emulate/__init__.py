"""Bit-exact emulation of approximate multipliers in PyTorch: quantizers, kernels, layers."""
