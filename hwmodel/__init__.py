"""Accelerator cost model (Timeloop/Accelergy-style). Not yet implemented: see issue 3."""
