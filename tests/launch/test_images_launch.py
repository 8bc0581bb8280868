"""Every launcher family trains on real 28x28 digits with Xu et al.'s ResnetVAE networks.

Cheap on purpose: a 16-image slice of `mnist5k` (registered here as `mnist5k_tiny`,
the real digits through the real loader), batch 8, one epoch (2 steps), 4-sample
IWAE evaluation. What is checked: the run finishes with finite numbers, the encoder
and decoder really are the ResNet networks on images, the VampPrior's pseudo-inputs
are images, the export takes `[N, 28, 28, 1]`, the AIS evaluation runs on the
workdir, and a bad `--architecture` fails before anything is written.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import parse
from tfvi import networks
from tfvi.data import datasets as D
from tfvi.launch import evaluate as E
from tfvi.launch import train as T
from tfvi.launch.flags import FlagError

T.setup()
E.define_flags()


@D.register_dataset("mnist5k_tiny")
def _mnist5k_tiny(data_dir=None, seed=0):
    bundle = D.DATASETS["mnist5k"](data_dir, seed)
    bundle.splits = {k: (x[:16], y[:16]) for k, (x, y) in bundle.splits.items()}
    bundle.name = "mnist5k_tiny"
    return bundle


BASE = ["--dataset=mnist5k_tiny", "--architecture=resnet_vae", "--batch_size=8",
        "--epochs=1", "--latent_dim=4", "--eval_iwae_samples=4", "--eval_max_examples=8",
        "--jit_compile=false", "--verbose=0"]


def train(workdir, *args):
    return T.train(parse("tfvi-train", *BASE, f"--workdir={workdir}", *args))


def assert_resnet(model):
    assert isinstance(model.encoder.network.layers[0], networks.ResidualBlock)
    assert model.encoder.input_shape_ == (28, 28, 1)


@pytest.fixture(scope="module")
def vamp_run(tmp_path_factory):
    """Mixture posterior, SIWAE, VampPrior; with export and plots."""
    workdir = str(tmp_path_factory.mktemp("vamp") / "w")
    metrics = train(workdir, "--objective=siwae", "--components=2", "--samples=2",
                    "--prior=vamp", "--pseudo_inputs=3")
    return workdir, metrics


def test_vae_with_mixture_posterior_and_vamp_prior(vamp_run):
    workdir, metrics = vamp_run
    assert np.isfinite(metrics["test"]["nll"]) and metrics["epochs_trained"] == 1
    model, _ = E.restore_model(workdir, D.prepare(
        D.load("mnist5k_tiny"), None, images=True))
    assert_resnet(model)
    assert model.decoder.event_shape == (28, 28, 1) and model.decoder.spatial_head
    assert tuple(model.prior.pseudo_inputs.shape) == (3, 28, 28, 1)


def test_export_takes_images_and_plots_are_image_grids(vamp_run):
    workdir, metrics = vamp_run
    loaded = tf.saved_model.load(os.path.join(workdir, "export"))
    spec = loaded.signatures["encode"].structured_input_signature[1]["x"]
    assert spec.shape.as_list() == [None, 28, 28, 1]
    x = D.prepare(D.load("mnist5k_tiny"), None, images=True).eval_splits["test"][0][:2]
    assert np.all(np.isfinite(loaded.signatures["elbo"](x=tf.constant(x))["elbo"]))
    assert {"plots/samples.png", "plots/reconstructions.png"} <= set(metrics["plots"])


def test_ais_evaluation_of_an_image_workdir(vamp_run):
    workdir, _ = vamp_run
    out = E.evaluate(parse("tfvi-eval", f"--path={workdir}", "--ais_temperatures=2",
                           "--ais_chains=2", "--ais_leapfrog_steps=1", "--max_examples=4",
                           "--num_samples=4", "--metrics=iwae", "--jit_compile=false",
                           "--verbose=0"))
    assert np.isfinite(out["metrics"]["ais_nll"]) and np.isfinite(out["metrics"]["nll"])


@pytest.mark.parametrize("name,args", [
    ("realnvp_prior", ["--objective=elbo", "--posterior=gaussian", "--components=1",
                       "--samples=1", "--prior=realnvp", "--prior_depth=1",
                       "--prior_hidden=8", "--kl_warmup_epochs=1"]),
    ("aiwae", ["--model=aiwae", "--objective=iwae", "--posterior=gaussian",
               "--components=1", "--samples=2", "--ais_temperatures=2",
               "--ais_leapfrog_steps=1"]),
    ("mim", ["--model=mim", "--objective=mim", "--posterior=gaussian", "--components=1",
             "--mim_ksg_points=8"]),
])
def test_family_trains_on_images(tmp_path, name, args):
    metrics = train(str(tmp_path / name), "--noplots", "--noexport", *args)
    assert metrics["epochs_trained"] == 1
    assert all(np.isfinite(v[-1]) for v in metrics["history"].values())


def test_vib_single_column_of_a_28x28_image(tmp_path):
    metrics = train(str(tmp_path / "vib"), "--model=vib", "--view=single_column",
                    "--target=label", "--objective=selbo", "--components=2", "--samples=1",
                    "--predict_samples=4", "--eval_max_examples=16", "--noplots")
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0


def test_unknown_architecture_names_the_flag_before_writing(tmp_path):
    workdir = tmp_path / "w"
    with pytest.raises(FlagError, match=r"--architecture='unet' is not accepted; accepted "
                                        r"values: conv, conv_hvae, conv_hvae_pixelcnn, conv_vae, "
                                        r"dense_vae, mlp, resnet_vae"):
        T.train(parse("tfvi-train", *BASE, f"--workdir={workdir}",
                      "--architecture=unet"))
    assert not workdir.exists()


def test_mixed_bfloat16_conv_run_has_finite_float32_bounds(tmp_path):
    """`--precision=mixed_bfloat16` (applied before the model is built): the conv
    networks compute in bfloat16, the heads, log-densities and bounds in float32, and
    the run's bounds are finite; metrics.json records the resolved policy, and
    `--jit_compile=auto` resolves to tfvi.precision's choice for the architecture."""
    import keras

    from tfvi import precision
    from tfvi.training.workdir import load_workdir

    workdir = str(tmp_path / "bf16")
    metrics = T.train(parse("tfvi-train", *[a for a in BASE if "jit_compile" not in a],
                            f"--workdir={workdir}", "--architecture=conv_vae",
                            "--precision=mixed_bfloat16", "--objective=elbo",
                            "--posterior=gaussian", "--components=1", "--samples=1",
                            "--noplots", "--noexport"))
    assert keras.config.dtype_policy().name == "float32"  # the run restores the policy
    assert metrics["runtime"] == {"precision": "mixed_bfloat16", "num_replicas": 1,
                                  "jit_compile": precision.default_jit_compile("conv_vae")}
    assert metrics["flags"]["precision"] == "mixed_bfloat16"
    for key in ("loss", "elbo", "nll", "kl"):
        assert np.isfinite(metrics["test"][key]), key
    model, _ = load_workdir(workdir)
    # The networks' layers keep the policy they were built with (the Sequential around
    # them does not serialise one); the heads are float32.
    for network in (model.encoder.network, model.decoder.network):
        assert network.layers[0].dtype_policy.name == "mixed_bfloat16"
    assert model.encoder.dtype_policy.name == "float32"
    x = D.prepare(D.load("mnist5k_tiny"), None, images=True).eval_splits["test"][0][:4]
    terms = model.log_weight_terms(tf.constant(x), samples=2, seed=tf.constant([1, 2]))
    for name, value in terms.items():
        assert value.dtype == tf.float32, name
        assert np.all(np.isfinite(value.numpy())), name
