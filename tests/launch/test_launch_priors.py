"""tfvi-train with learned priors (vamp, realnvp, maf), the Real NVP posterior, KL
warm-up, burn-in for --model=vae, and --prior_training phases: tiny end-to-end runs
in-process plus one-line errors for bad flags."""

import os

import numpy as np
import pytest
from absl import flags

from tests.helpers import parse as parse_flags
from tfvi.launch import train as T
from tfvi.launch.families import learned_priors as LP
from tfvi.launch.flags import FlagError

T.setup()
FLAGS = flags.FLAGS
TINY = ["--preset=smoke", "--jit_compile=false", "--epochs=1", "--eval_iwae_samples=10",
        "--eval_max_examples=50", "--noplots", "--noexport", "--verbose=0",
        "--posterior=gaussian", "--components=1", "--objective=iwae", "--samples=2",
        "--prior_depth=2", "--prior_hidden=8", "--pseudo_inputs=10",
        "--posterior_depth=2", "--posterior_flow_hidden=8"]


def parse(*args):
    return parse_flags("tfvi-train", *args)


# The Real NVP prior runs with the Real NVP posterior (one run covers both).
@pytest.mark.parametrize("extra", [["--prior=vamp"], ["--prior=maf"],
                                   ["--posterior=realnvp", "--qz_regularizer=1.0",
                                    "--prior=realnvp"]])
def test_learned_prior_trains_end_to_end(tmp_path, extra):
    metrics = T.train(parse(*TINY, *extra, f"--workdir={tmp_path / 'w'}"))
    assert metrics["epochs_trained"] == 1
    assert np.isfinite(metrics["test"]["nll"])
    assert metrics["flags"]["prior"] == extra[-1].split("=")[1]
    assert ("qz_regularizer" in metrics["history"]) == ("--qz_regularizer=1.0" in extra)


def test_kl_warmup_and_burn_in_for_vae(tmp_path):
    metrics = T.train(parse(*TINY, "--epochs=2", "--kl_warmup_epochs=2", "--beta=1.0",
                            "--burn_in_epochs=1", f"--workdir={tmp_path / 'w'}"))
    # beta at the start of epoch 0 and 1: 0.01, then halfway to 1.
    np.testing.assert_allclose(metrics["history"]["beta"], [0.01, 0.505], rtol=1e-5)


def test_early_stopping_counts_from_the_end_of_the_kl_warmup(tmp_path):
    """While beta < 1 the validation loss is lowered by the warm-up itself: early
    stopping that compared those epochs stopped a Table 1 cell (Xu et al. protocol) at
    epoch 13 and restored its weights from epoch 8 (beta 0.7). Only epochs at the
    full bound may be the best, and none may stop the run. A learning rate of 1e-6
    isolates the mechanism: the weights barely move, so the validation loss rises
    with beta and the first epoch would be the best of all."""
    warmup, patience = 4, 1
    metrics = T.train(parse(*TINY, "--epochs=9", f"--kl_warmup_epochs={warmup}",
                            "--learning_rate=1e-6",
                            f"--early_stopping_patience={patience}", "--beta=1.0",
                            "--validation_fraction=0.2", "--objective=elbo", "--samples=1",
                            f"--workdir={tmp_path / 'w'}"))
    history = metrics["history"]
    assert metrics["epochs_trained"] >= warmup + patience + 1
    settled = np.asarray(history["val_loss"][warmup:])
    assert np.all(np.asarray(history["beta"][warmup:]) == 1.0)
    # The restored weights are those of the best settled epoch: their validation loss
    # (the final evaluation's negative ELBO) is near that epoch's, not a warm-up epoch's.
    assert abs(-metrics["validation"]["elbo"] - settled.min()) < 1.0


def test_posthoc_freezes_each_phase(tmp_path):
    """Epoch 1 trains the VAE with the flow prior held at N(0, I); epoch 2 only the
    prior: the encoder/decoder weights of the checkpoints after epoch 1 and 2 agree
    and the prior's do not (and vice versa for epoch 1)."""
    workdir = tmp_path / "w"
    args = [*TINY, "--prior=realnvp", "--prior_training=posthoc", "--epochs=2",
            "--checkpoint_keep=3", "--checkpoint_every_seconds=0", f"--workdir={workdir}"]
    T.train(parse(*args))
    import keras

    from tfvi.data import datasets
    from tfvi.launch.registry import MODELS
    from tfvi.training.checkpointing import CheckpointManager

    f = parse(*args)
    T.tfvi_flags.apply_preset(f)
    bundle = datasets.load(f.dataset, seed=f.seed)
    prepared = datasets.prepare(bundle, None, f.view, f.target, seed=f.seed)

    def weights_after(epoch):
        model = MODELS["vae"].build(f, prepared)
        model.load_weights(os.path.join(workdir, "checkpoints", f"epoch-{epoch:05d}",
                                        "model.weights.h5"))
        enc_dec = [v.numpy() for v in model.encoder.weights + model.decoder.weights]
        return enc_dec, [v.numpy() for v in model.prior.weights]

    keras.utils.set_random_seed(f.seed)
    fresh = MODELS["vae"].build(f, prepared)
    prior0 = [v.numpy() for v in fresh.prior.weights]
    ed1, prior1 = weights_after(1)
    ed2, prior2 = weights_after(2)
    assert all(np.array_equal(a, b) for a, b in zip(prior0, prior1))  # prior frozen
    assert all(np.array_equal(a, b) for a, b in zip(ed1, ed2))  # encoder/decoder frozen
    assert not all(np.array_equal(a, b) for a, b in zip(prior1, prior2))  # prior trains


def test_launcher_phases_are_the_prior_training_schedule():
    """`--prior_training` runs `tfvi.prior_training.phases` over `--epochs` (the one
    schedule; its split is tested in test_prior_training.py): every epoch has a phase,
    VAE and prior phases alternate, and the phase of an epoch depends on its index."""
    for epochs in (2, 3, 10):
        phases = LP.PriorTrainingPhases("posthoc", epochs).phases
        assert [(p.name, p.epochs) for p in phases] == [("vae", epochs - epochs // 2),
                                                        ("prior", epochs // 2)]
    for epochs in (9, 16, 40):
        phases = LP.PriorTrainingPhases("iterative", epochs).phases
        assert sum(p.epochs for p in phases) == epochs and all(p.epochs > 0 for p in phases)
        assert [p.encoder_decoder for p in phases] == [True, False, False] + [True, False] * 3
    phases = LP.PriorTrainingPhases("iterative", 32).phases
    assert [LP.prior_training.phase_of_epoch(phases, e).name
            for e in (0, 15, 16, 17, 18, 19, 20, 31)] == [
        "1a_vae", "1a_vae", "1b_prior", "1b_prior", "1b_prior_low_lr", "1b_prior_low_lr",
        "2a_vae", "4b_prior"]


@pytest.mark.parametrize("args,flag", [
    (["--prior=vampire"], "--prior"),
    (["--posterior=maf"], "--posterior"),
    (["--prior=realnvp", "--prior_depth=0"], "--prior_depth"),
    (["--prior=vamp", "--pseudo_inputs=0"], "--pseudo_inputs"),
    (["--kl_warmup_epochs=-1"], "--kl_warmup_epochs"),
    (["--qz_regularizer=-0.5"], "--qz_regularizer"),
    (["--burn_in_epochs=-1"], "--burn_in_epochs"),
    (["--prior=mog", "--prior_training=posthoc", "--epochs=4"], "--prior_training"),
    (["--prior=maf", "--prior_training=iterative", "--epochs=4"], "--prior_training"),
])
def test_bad_flags_name_the_flag_and_write_nothing(tmp_path, args, flag):
    workdir = tmp_path / "w"
    with pytest.raises(FlagError, match=flag):
        T.train(parse(*TINY, *args, f"--workdir={workdir}"))
    assert not workdir.exists()


def test_unknown_prior_training_is_refused_by_the_parser():
    FLAGS.unparse_flags()
    with pytest.raises(flags.Error, match="prior_training"):
        FLAGS(["tfvi-train", "--prior_training=alternate"])
