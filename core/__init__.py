"""Infrastructure every hwcost package shares: the user-facing error, size limits, atomic
writes, checks on untrusted files, units and the typed arithmetic of a layer.

It sits at the root of the dependency chain (``core <- multiplier_lib <- hwmodel <- darts <-
nas <- hwcost``) and imports nothing from the project.
"""
