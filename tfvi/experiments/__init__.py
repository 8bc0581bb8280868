"""Reproduction scripts for the seed papers' experiments (`python -m tfvi.experiments.X`)."""
