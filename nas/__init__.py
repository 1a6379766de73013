"""Energy-aware DARTS search. Not yet implemented: see issue 5."""
