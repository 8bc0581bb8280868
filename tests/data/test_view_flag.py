"""`--view=pca20`: every example projected onto the training split's first 20 principal
axes, reproducible by a refit (what `tfvi-eval` does), and one clear error on the
combinations it cannot serve."""

import json
import os

import numpy as np
import pytest
from absl import flags

from tfvi.data import datasets as D
from tfvi.data.projection import fit_pca
from tfvi.launch import evaluate as E
from tfvi.launch import train as T
from tfvi.launch.flags import FlagError


def test_codes_are_the_training_split_pca():
    bundle = D.load("digits", validation_fraction=0.2)
    prepared = D.prepare(bundle, None, "pca20")
    assert prepared.input_dim == 20 and prepared.target_dim == 20
    assert prepared.likelihood == "gaussian" and prepared.binarization == "none"
    codes = prepared.eval_splits["train"][0]
    # Training codes are centred, uncorrelated, with the explained variances.
    np.testing.assert_allclose(codes.mean(axis=0), 0.0, atol=1e-4)
    cov = np.cov(codes.astype(np.float64), rowvar=False)
    np.testing.assert_allclose(cov, np.diag(prepared.projection.explained_variance),
                               atol=1e-4)
    # Validation/test examples use the training fit, not their own.
    raw_train = D.load("digits", validation_fraction=0.2).splits["train"][0]
    for split in ("validation", "test"):
        raw = D.load("digits", validation_fraction=0.2).splits[split][0]
        np.testing.assert_allclose(prepared.eval_splits[split][0],
                                   fit_pca(raw_train, 20).transform(raw), atol=1e-5)
    assert not np.allclose(fit_pca(bundle.splits["test"][0], 20).components,
                           prepared.projection.components, atol=1e-2)


def test_refit_is_sign_stable():
    x = D.load("digits").splits["train"][0]
    a = fit_pca(x, 20)
    b = fit_pca(x[np.random.default_rng(0).permutation(len(x))], 20)
    np.testing.assert_allclose(a.components, b.components, atol=1e-4)
    largest = a.components[np.arange(20), np.abs(a.components).argmax(axis=1)]
    assert np.all(largest > 0)


def test_train_pipeline_yields_the_codes_as_input_and_target():
    prepared = D.prepare(D.load("digits"), None, "pca20")
    batch = next(iter(prepared.train_dataset(8, shuffle=False)))
    np.testing.assert_allclose(batch.numpy(), prepared.eval_splits["train"][0][:8], atol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    (dict(likelihood="bernoulli"), "--view=pca20 gives real-valued codes"),
    (dict(images=True), "--view=pca20 gives flat codes"),
])
def test_bad_combinations_name_the_flag(kwargs, message):
    likelihood = kwargs.pop("likelihood", None)
    with pytest.raises(ValueError, match=message):
        D.prepare(D.load("digits"), likelihood, "pca20", **kwargs)


# ------------------------------------------------------------------ launcher
T.setup()
E.define_flags()
FLAGS = flags.FLAGS
BASE = ["--dataset=digits", "--view=pca20", "--latent_dim=2", "--encoder_hidden=16",
        "--decoder_hidden=16", "--posterior=gaussian", "--objective=elbo", "--samples=1",
        "--epochs=1", "--eval_iwae_samples=8", "--eval_max_examples=100", "--ksg_points=50",
        "--plots=false", "--verbose=0"]


def parse(prog, *args):
    FLAGS.unparse_flags()
    FLAGS([prog, *args])
    return FLAGS


def test_train_then_eval_reproduces_the_projection(tmp_path):
    workdir = str(tmp_path / "w")
    metrics = T.train(parse("tfvi-train", *BASE, f"--workdir={workdir}"))
    assert json.load(open(os.path.join(workdir, "flags.json")))["view"] == "pca20"
    assert metrics["estimators"]["data"]["likelihood"] == "gaussian"
    f = parse("tfvi-eval", f"--path={workdir}", "--max_examples=100", "--num_samples=8",
              f"--output={workdir}/eval.json")
    meta, _ = E.load_export(os.path.join(workdir, "export"))
    _, x, _, _ = E.load_split(f, meta)
    bundle = D.load("digits")
    expected = fit_pca(bundle.splits["train"][0], 20).transform(bundle.splits["test"][0][:100])
    np.testing.assert_allclose(x, expected, atol=1e-5)
    out = E.evaluate(f)
    # The same model and codes, other importance samples: the IWAE-8 NLLs agree.
    assert abs(out["metrics"]["nll"] - metrics["test"]["nll"]) < 0.5


@pytest.mark.parametrize("args,message", [
    (("--architecture=conv_vae",), r"--view=pca20 gives flat 20-D codes.*--architecture=mlp"),
    (("--likelihood=bernoulli",), r"--likelihood=bernoulli is not supported with --view=pca20"),
])
def test_launcher_refuses_before_writing(tmp_path, args, message):
    workdir = tmp_path / "w"
    with pytest.raises(FlagError, match=message):
        T.train(parse("tfvi-train", *BASE, f"--workdir={workdir}", *args))
    assert not workdir.exists()


def test_fashion_mnist_preset_needs_data_dir(tmp_path):
    from tfvi.launch import flags as tfvi_flags

    config = tfvi_flags.read_config(parse("tfvi-train", "--preset=mim_fig3_fashion_mnist",
                                          f"--workdir={tmp_path / 'w'}"))
    assert (config.view, config.model, config.prior, config.dataset) == (
        "pca20", "mim", "vamp", "fashion_mnist")
    with pytest.raises(D.DataUnavailableError, match="--data_dir"):
        D.load("fashion_mnist", data_dir=str(tmp_path))
