"""`tfvi-eval --ais_temperatures=N`: the AIS protocol and Ding & Freedman's table on a
training workdir's live model (rebuilt from flags.json and its newest checkpoint), on
one device or sharded over `--strategy`'s replicas."""

import os

__all__ = ["ais_metrics", "ais_settings", "restore_model"]


def ais_settings(f):
    """The AIS protocol from the flags, or None when AIS is off."""
    from tfvi.launch.config import check_flag_at_least, check_flag_choice

    temperatures = f.ais_temperatures if f["ais_temperatures"].present else 0
    if not temperatures:
        return None
    if temperatures < 2:
        raise ValueError(f"--ais_temperatures={temperatures} is not accepted; accepted "
                         "values: 0 (off) or integers >= 2.")
    for name in ("ais_chains", "ais_leapfrog_steps"):
        check_flag_at_least(name, getattr(f, name), 1)
    check_flag_choice("ais_schedule", f.ais_schedule, ("linear", "sigmoid"))
    check_flag_choice("jit_compile", f.jit_compile, ("auto", "true", "false"))
    # The flag's default here is 10 (Wu et al.); tfvi-train's aiwae family defines it
    # with its training default, so an absent flag means the protocol's 10.
    leapfrog = f.ais_leapfrog_steps if f["ais_leapfrog_steps"].present else 10
    return dict(num_chains=f.ais_chains, num_temperatures=temperatures,
                num_leapfrog_steps=leapfrog, schedule=f.ais_schedule,
                jit_compile=f.jit_compile != "false")


def restore_model(workdir, prepared, strategy=None):
    """The live Keras model of a workdir: rebuilt from flags.json by its family's
    builder (as `tfvi-train` does when resuming) with the newest checkpoint's weights;
    inside `strategy.scope()` when a strategy is given (mirrored variables)."""
    import contextlib

    import keras

    from tfvi.training.checkpointing import CheckpointManager
    from tfvi.launch.config import from_stored
    from tfvi.launch.registry import MODELS
    from tfvi.training.workdir import read_json

    train_flags = from_stored(read_json(os.path.join(workdir, "flags.json")))
    family = MODELS.get(train_flags.model)
    if family is None:
        raise ValueError(f"{workdir}/flags.json has --model={train_flags.model}, which is "
                         "not registered here.")
    manager = CheckpointManager(os.path.join(workdir, "checkpoints"), sweep=False)
    if manager.latest() is None:
        raise ValueError(f"AIS needs a checkpoint; {workdir}/checkpoints has none.")
    keras.utils.set_random_seed(train_flags.seed)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = family.build(train_flags, prepared)
        manager.restore(model)
    return model, train_flags


def ais_metrics(workdir, prepared, f, ais, x, y, strategy=None):
    """Ding & Freedman's table (AIS NLL and NVLB on test and train, gaps, active units) for the
    workdir's model, plus the AIS log-likelihood of the evaluated split (`"metrics"`);
    with `--noais_table` only the latter (`{"metrics": ...}`), with the seed and
    examples the table uses for that split."""
    import numpy as np

    from tfvi import distribute, evaluation

    model, train_flags = restore_model(workdir, prepared, strategy)
    if not all(hasattr(model, name) for name in ("encoder", "decoder", "prior")):
        raise ValueError(f"--ais_temperatures: --model={train_flags.model} has no "
                         "encoder/decoder/prior to anneal between.")
    if y is not None and prepared.target == "label":
        raise ValueError("--ais_temperatures: AIS scores log p(x); this model predicts "
                         "labels (--target=label).")
    max_examples = f.max_examples or None
    x_test = prepared.eval_splits["test"][0]
    x_train = prepared.eval_splits["train"][0]
    seed = int(train_flags.seed)
    table = {}
    if f.ais_table:
        table = distribute.distributed_ais_gap_table(
            model, x_test, x_train, strategy, iwae_samples=f.num_samples,
            max_examples=max_examples, seed=seed, verbose=f.verbose, preset="wu",
            iwae_batch_size=f.batch_size, batch_size=f.batch_size, **ais)
    if table and f.split in ("test", "train"):
        nll = table[f"nll_{f.split}"]
    else:
        # The table's seeds: seed for the test split, seed + 1 for the train split.
        split_seed = seed + 1 if f.split == "train" else seed
        if strategy is not None:
            ll = distribute.distributed_ais_log_likelihood(
                model, x, strategy, preset="wu", seed=split_seed, verbose=f.verbose,
                batch_size=f.batch_size, **ais).log_likelihood
        else:
            ll = evaluation.ais_log_likelihood(
                model, x, preset="wu", seed=split_seed, verbose=f.verbose,
                batch_size=f.batch_size, **ais).log_likelihood
        nll = -float(np.mean(ll))
    table["metrics"] = {f"ais_{ais['num_temperatures']}_log_likelihood": -nll,
                        "ais_nll": nll}
    return table
