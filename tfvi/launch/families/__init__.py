"""Model families for the launcher, independent plugins. Every module in this package
is imported when the launcher starts, so a new family (or feature, prior, posterior,
likelihood, strategy) registers itself by adding one module here that calls
`tfvi.launch.registry`'s `register_*` functions; it declares its flags as
`registry.Flag`s (`tfvi.launch.flags` defines them). No module here imports another:
what several families share is in `tfvi.launch.components` or a `Feature` they name."""

import importlib
import pkgutil


def import_all():
    # The built-in posteriors, priors, likelihoods and strategies register themselves.
    importlib.import_module("tfvi.launch.components")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}")
