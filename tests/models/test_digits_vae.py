"""A VAE learns the bundled digits: test IWAE NLL well below the trivial model's."""

import keras
import numpy as np

from tfvi import data, evaluation, layers, models


def test_vae_on_binarized_digits_beats_independent_pixels():
    keras.utils.set_random_seed(0)
    arrays = data.load_digits()
    model = models.VAE(layers.GaussianEncoder(8, hidden=(200, 200)),
                       layers.BernoulliDecoder(data.DIGITS_DIM, hidden=(200, 200)),
                       objective="iwae", samples=5, input_dim=data.DIGITS_DIM, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(data.digits_dataset("train", 100, seed=0, arrays=arrays), epochs=15, verbose=0)
    nll = -evaluation.iwae_log_likelihood(model, arrays["test_x"], num_samples=500).mean()
    baseline = -evaluation.independent_bernoulli_log_likelihood(
        arrays["train_probs"], arrays["test_x"]).mean()
    assert np.isfinite(nll)
    assert nll < baseline - 2.0, (nll, baseline)
