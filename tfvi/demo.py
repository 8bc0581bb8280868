"""A SIWAE mixture-posterior VAE on the bundled digits, end to end in about a minute.

    python -m tfvi.demo [--epochs N]

Trains, then prints the test IWAE-k negative log-likelihood next to the trivial
per-pixel Bernoulli model's. (`tfvi-train` is the full launcher.)
"""

import argparse
import time

import keras
import numpy as np

from tfvi import data, evaluation, layers, models


def trivial_bernoulli_nll(train_probs, test_x):
    """NLL of independent per-pixel Bernoullis fitted to the training pixel means."""
    p = np.clip(train_probs.mean(axis=0), 1e-3, 1 - 1e-3)
    return float(-(test_x * np.log(p) + (1 - test_x) * np.log1p(-p)).sum(axis=1).mean())


def build_model(latent_dim=8, components=5, samples=10, seed=0):
    encoder = layers.MixtureEncoder(latent_dim, components=components, hidden=(200, 200),
                                    activation="tanh", covariance="diag")
    decoder = layers.BernoulliDecoder(data.DIGITS_DIM, hidden=(200, 200), activation="tanh")
    objective = "siwae" if components > 1 else "iwae"
    return models.VAE(encoder, decoder, objective=objective, samples=samples,
                      input_dim=data.DIGITS_DIM, seed=seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    arrays = data.load_digits()
    model = build_model(seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    start = time.time()
    model.fit(data.digits_dataset("train", 100, seed=args.seed, arrays=arrays),
              epochs=args.epochs, verbose=2)
    nll = -evaluation.iwae_log_likelihood(model, arrays["test_x"], num_samples=1000).mean()
    print(f"trained {args.epochs} epochs in {time.time() - start:.0f} s")
    print(f"test IWAE-1000 NLL: {nll:.2f} nats "
          f"(per-pixel Bernoulli baseline: "
          f"{trivial_bernoulli_nll(arrays['train_probs'], arrays['test_x']):.2f})")


if __name__ == "__main__":
    main()
