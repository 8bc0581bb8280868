"""Burn-in against the prior (Morningstar et al., B.3): moved to
`tfvi.training.burn_in` with the other training callbacks; this name stays for
existing imports (`tfvi.burn_in.burn_in`, `tfvi.burn_in.BurnIn`)."""

from tfvi.training.burn_in import BurnIn, burn_in, burn_in_loss

__all__ = ["burn_in", "burn_in_loss", "BurnIn"]
