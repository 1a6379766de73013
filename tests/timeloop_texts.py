"""Timeloop input texts several test modules share (each test writes them to its own files)."""

from __future__ import annotations


def gemm_problem(k: int, p: int, r: int) -> str:
    """A GEMM ``Z[K,P] += A[K,R] * B[R,P]`` whose dimensions and data spaces are the
    problem's own names (no CNN name anywhere): what issue 18's front end must accept."""
    return f"""\
problem:
  shape:
    name: gemm
    dimensions: [K, P, R]
    data_spaces:
    - {{name: A, projection: [[[K]], [[R]]]}}
    - {{name: B, projection: [[[R]], [[P]]]}}
    - {{name: Z, projection: [[[K]], [[P]]], read_write: true}}
  instance: {{K: {k}, P: {p}, R: {r}}}
"""
