"""What the Tables 4-6 models learned, from the weights their cells keep: per model and
seed, the terms of the bound on encoding samples and the shape of the codes.

    python experiments/mim_hvae_codes.py --out runs/mim_hvae_tables    # after the grid

For the first `--images` test digits x (fixed binarisation) and one z ~ q(z1, z2|x)
each: the mean of log p(x|z) (how well the decoder explains the model's own codes),
log p(z) (the two-level VampPrior) and log q(z|x); per level, the mean posterior
standard deviation (over 8 draws per image) and the spread of the posterior means
across images (their standard deviation per unit, averaged over units); and 5-NN
accuracy from the posterior means (the table's 5-NN uses sampled codes). Writes
`<out>/codes.json` and prints a table. Reads the cells' `cells/<key>.weights.h5`
(`hvae_cells.weights_path`), which exist only where the grid ran: each machine keeps
what it trained.
"""

import argparse
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mim_hvae_tables as tables  # noqa: E402
from hvae_cells import weights_path  # noqa: E402

from tfvi.evaluation import knn_accuracy, latent_codes  # noqa: E402


def code_statistics(model, x, lower_dim, seed=0, draws=8):
    """The bound's terms on one encoding sample per image, and per level (z1: the first
    `lower_dim` units, z2: the rest) the posterior std and the spread of the means."""
    terms = model.log_weight_terms(tf.constant(x), seed=tf.constant([seed, 1]))
    row = {name: float(np.mean(terms[name]))
           for name in ("log_likelihood", "log_prior", "log_posterior")}
    z = np.stack([np.asarray(model.encoder(x).sample(seed=(seed, d))) for d in range(draws)])
    std, means = z.std(0), z.mean(0)
    for level, units in (("z1", slice(0, lower_dim)), ("z2", slice(lower_dim, None))):
        row[f"posterior_std_{level}"] = float(std[:, units].mean())
        row[f"code_spread_{level}"] = float(means[:, units].std(0).mean())
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the grid's --out directory")
    parser.add_argument("--models", nargs="+", default=list(tables.MODELS),
                        choices=tables.MODELS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--smoke", action="store_true", help="the grid's --smoke models")
    args = parser.parse_args(argv)
    shape = tables.parse_args(["--smoke"] if args.smoke else [])  # the grid's models
    arrays = tables.load(args.smoke)
    x = arrays["test_x"][:args.images]
    rows = []
    for name in args.models:
        for seed in args.seeds:
            path = weights_path(args.out, {"model": name, "seed": seed})
            if not os.path.exists(path):
                print(f"no weights: {os.path.basename(path)}", flush=True)
                continue
            model = tables.build(name, shape, seed, arrays["train_probs"])
            model.load_weights(path)
            row = {"model": name, "seed": seed,
                   **code_statistics(model, x, shape.lower_dim, seed)}
            means = [latent_codes(model, arrays[k], batch_size=200, sample=False, seed=seed)
                     for k in ("train_x", "test_x")]
            row["knn5_means"] = knn_accuracy(means[0], arrays["train_labels"], means[1],
                                             arrays["test_labels"], k=5)
            rows.append(row)
    columns = [k for k in (rows[0] if rows else {}) if k not in ("model", "seed")]
    print(f"{'model':6} {'seed':>4} " + " ".join(f"{c[:16]:>16}" for c in columns))
    for row in rows:
        print(f"{row['model']:6} {row['seed']:4d} "
              + " ".join(f"{row[c]:16.3f}" for c in columns))
    with open(os.path.join(args.out, "codes.json"), "w") as f:
        json.dump({"images": len(x), "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    keras.config.disable_interactive_logging()
    main()
