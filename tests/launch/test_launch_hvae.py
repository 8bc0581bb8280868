"""`--architecture=conv_hvae|conv_hvae_pixelcnn`: Livne et al.'s two-level models from
the launcher (tfvi.layers.conv_hvae), end to end on a 16-image slice of `mnist5k`.

Cheap on purpose (the suite is at its time budget): width 0.25, d1 = d2 = 2, batch 8,
one epoch, 4-sample IWAE on 8 examples. Checked: the run trains MIM with a VampPrior
on z2 and `--min_scale`, exports the five signatures, `tfvi-eval` scores the workdir
consistently with metrics.json, active units are reported per layer and add up to
the joint count; the PixelCNN variant and Xu et al.'s PixelVAE (`--likelihood=pixelcnn`)
are wired (built by the launcher and scored, not trained: the trained path is the
MIM run's); flags a two-level model cannot take fail with one line naming the flag
before anything is written.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from tfvi import layers
from tfvi.data import datasets as D
from tfvi.launch import evaluate as E
from tfvi.launch import train as T
from tfvi.launch.flags import FlagError

T.setup()
E.define_flags()
FLAGS = flags.FLAGS


@D.register_dataset("mnist5k_hvae_tiny")
def _mnist5k_hvae_tiny(data_dir=None, seed=0):
    bundle = D.DATASETS["mnist5k"](data_dir, seed)
    bundle.splits = {k: (x[:16], y[:16]) for k, (x, y) in bundle.splits.items()}
    bundle.name = "mnist5k_hvae_tiny"
    return bundle


BASE = ["--dataset=mnist5k_hvae_tiny", "--architecture=conv_hvae", "--hvae_width=0.25",
        "--batch_size=8", "--epochs=1", "--latent_dim=4", "--eval_iwae_samples=4",
        "--eval_max_examples=8", "--ksg_points=8", "--plots=false", "--verbose=0"]


def parse(prog, *args):
    FLAGS.unparse_flags()
    FLAGS([prog, *args])
    return FLAGS


def train(workdir, *args):
    return T.train(parse("tfvi-train", *BASE, f"--workdir={workdir}", *args))


def test_mim_conv_hvae_end_to_end(tmp_path):
    """One run (a module fixture would train once per xdist worker): MIM with a
    VampPrior on z2 and --min_scale; then the model, per-layer active units, export
    and tfvi-eval on the workdir."""
    workdir = str(tmp_path / "w")
    metrics = train(workdir, "--model=mim", "--prior=vamp", "--pseudo_inputs=3",
                    "--min_scale=0.05")
    assert metrics["epochs_trained"] == 1 and np.isfinite(metrics["test"]["nll"])
    model, _ = E.restore_model(workdir, D.prepare(D.load("mnist5k_hvae_tiny"), None,
                                                  images=True))
    assert isinstance(model.encoder, layers.HierarchicalEncoder)
    assert (model.encoder.lower_dim, model.encoder.upper_dim) == (2, 2)
    assert model.encoder.top.min_scale == 0.05
    assert isinstance(model.prior.top, layers.VampPrior)
    assert tuple(model.prior.top.pseudo_inputs.shape) == (3, 28, 28, 1)
    stored = json.load(open(os.path.join(workdir, "flags.json")))
    assert stored["architecture"] == "conv_hvae" and stored["min_scale"] == 0.05

    # Active units per layer add up to the joint count (same posterior means).
    for split in ("train", "test"):
        m = metrics[split]
        assert 0 <= m["active_units_z1"] <= 2 and 0 <= m["active_units_z2"] <= 2
        assert m["active_units_z1"] + m["active_units_z2"] == m["active_units"]

    loaded = tf.saved_model.load(os.path.join(workdir, "export"))
    assert {"encode", "decode", "sample", "elbo", "log_likelihood"} <= set(loaded.signatures)
    x = D.prepare(D.load("mnist5k_hvae_tiny"), None, images=True).eval_splits["test"][0][:8]
    elbo = loaded.signatures["elbo"](x=tf.constant(x))["elbo"].numpy()
    assert elbo.shape == (8,) and np.all(np.isfinite(elbo))
    out = E.evaluate(parse("tfvi-eval", f"--path={workdir}", "--max_examples=8",
                           "--num_samples=4", f"--output={workdir}/eval.json"))
    # The same model and examples, other importance samples: the IWAE-4 NLLs agree.
    nll = out["metrics"]["nll"]
    assert abs(nll - metrics["test"]["nll"]) < 0.05 * metrics["test"]["nll"]


def build(*args):
    """The launcher's model for these flags (validated config, prepared data, the
    family's build), and four test images: wiring only, no training."""
    from tfvi.launch import components
    from tfvi.launch import flags as tfvi_flags
    from tfvi.launch.registry import MODELS

    config = tfvi_flags.read_config(parse("tfvi-train", *BASE, "--workdir=/tmp/unused", *args))
    prepared = components.prepare_data(config)
    model = MODELS[config.model].build(config, prepared)
    return model, prepared, prepared.eval_splits["test"][0][:4]


def test_pixelcnn_variant_is_a_two_level_model_with_a_pixelcnn_likelihood():
    from tfvi.evaluation import iwae_log_likelihood

    model, prepared, x = build("--architecture=conv_hvae_pixelcnn", "--model=vae",
                               "--objective=elbo", "--samples=1")
    assert isinstance(model.encoder, layers.HierarchicalEncoder)
    assert isinstance(model.decoder, layers.PixelCNNDecoder)
    assert prepared.binarization == "dynamic" and set(np.unique(x)) <= {0.0, 1.0}
    assert np.all(np.isfinite(iwae_log_likelihood(model, x, num_samples=2)))


def test_pixel_vae_is_resnet_vae_with_a_pixelcnn_likelihood():
    """Xu et al.'s PixelVAE row: one-level ResnetVAE networks, PixelCNN p(x|z)."""
    from tfvi.evaluation import iwae_log_likelihood

    model, prepared, x = build("--architecture=resnet_vae", "--likelihood=pixelcnn",
                               "--posterior=gaussian", "--objective=elbo", "--samples=1")
    assert isinstance(model.encoder, layers.GaussianEncoder)
    assert isinstance(model.decoder, layers.PixelCNNDecoder)
    assert "resnet" in model.decoder.network.name and prepared.binarization == "dynamic"
    assert np.all(np.isfinite(iwae_log_likelihood(model, x, num_samples=2)))


@pytest.mark.parametrize("args,message", [
    (("--architecture=mlp", "--likelihood=pixelcnn"), r"--likelihood=pixelcnn needs a "
     r"one-level convolutional --architecture"),
    (("--posterior=mixture", "--components=2"), r"--posterior=mixture is not supported "
     r"with --architecture=conv_hvae .*accepted: gaussian\."),
    (("--prior=mog",), r"--prior=mog is not supported .*accepted: normal, vamp\."),
    (("--model=vib", "--target=label"), r"--model=vib is not supported .*accepted: vae, "
     r"mim, amim\."),
    (("--likelihood=gaussian",), r"--likelihood=gaussian is not supported"),
    (("--view=pca20",), r"--view=pca20 is not supported"),
    (("--latent_dim=1",), r"--latent_dim=1 is not accepted with --architecture=conv_hvae"),
    (("--min_scale=-1",), r"--min_scale=-1.0 is not accepted"),
    (("--hvae_width=0",), r"--hvae_width=0.0 is not accepted"),
])
def test_flags_a_two_level_model_cannot_take_fail_before_writing(tmp_path, args, message):
    workdir = tmp_path / "w"
    with pytest.raises(FlagError, match=message):
        train(str(workdir), *args)
    assert not workdir.exists()


def test_flat_data_set_is_refused_before_writing(tmp_path):
    workdir = tmp_path / "w"
    with pytest.raises(T.LaunchError, match="--architecture needs an image data set; "
                       "--dataset=abs_toy"):
        train(str(workdir), "--dataset=abs_toy", "--likelihood=auto")
    assert not workdir.exists()
