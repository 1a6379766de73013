"""Accelerator specs shipped with hwcost, resolvable by bare name."""
