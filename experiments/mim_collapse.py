"""Why MIM's 5-NN accuracy and A-MIM's mutual information collapse on digits with a
VampPrior (Livne, Swersky & Fleet, "MIM: Mutual Information Machine", Table 6 setting in
small; `experiments/mim_digits.py`).

Hypothesis. On encoding samples the one-sample Jensen estimate of log q(x) (Algorithm 2)
cancels log q(z|x), so A-MIM's loss is E_q[-log p(x|z) - log p(z)]: nothing rewards the
entropy of q. With a VampPrior, p(z) = mean_m q(z|u_m) is built from the same encoder,
so shrinking every posterior scale sigma raises log p(z) by about -d log sigma without
bound, while the reconstruction cost of collapsed codes is bounded (about 27 nats on
digits). The authors' code bounds the encoder's log-variance to [-6, 2] (Hardtanh;
`src/cond_pixelcnn/models/convHVAE_2level.py`), i.e. sigma >= e^-3 = 0.0498; tfvi's
encoders only floor sigma at 1e-4.

Measurement: the same models, data, schedule and seeds as mim_digits, in two arms that
differ only in the encoder's scale floor (1e-4, tfvi's default; 0.0498, the authors'
clamp), recording per epoch the geometric-mean posterior scale and the mean log p(z)
of encoding samples on the validation images, then the test metrics of mim_digits.

    python experiments/mim_collapse.py --seeds 0 1 --out experiments/results/mim_collapse
"""

import argparse
import json
import os
import sys
import time

if __package__ in (None, ""):  # run as `python experiments/X.py`: import from the repository
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from experiments import mim_digits  # noqa: E402
from tfvi import data  # noqa: E402
from tfvi.layers import encoders  # noqa: E402
from tfvi.training import KLWarmup  # noqa: E402

FLOORS = {"tfvi": 1e-4, "authors": float(np.exp(-3.0))}
# arm -> (scale floor, warm the weight of log p(z) up from 0 over the warm-up epochs)
ARMS = {"tfvi": ("tfvi", False), "authors_floor": ("authors", False),
        "prior_warmup": ("tfvi", True), "authors_floor+prior_warmup": ("authors", True)}


class ScaleTrace(keras.callbacks.Callback):
    """Per epoch: geometric-mean sigma of q(z|x) and mean log p(z), z ~ q(z|x), on `x`."""

    def __init__(self, x):
        super().__init__()
        self.x = tf.constant(x)
        self.trace = []

    def on_epoch_end(self, epoch, logs=None):
        q = self.model.encoder(self.x)
        z = q.sample(seed=tf.constant([epoch, 3]))
        self.trace.append({
            "epoch": epoch + 1,
            "log_sigma": float(tf.reduce_mean(tf.math.log(q.stddev()))),
            "log_prior": float(tf.reduce_mean(self.model.prior().log_prob(z))),
            "loss": float(logs["loss"]),
        })


def run(name, arm, seed, args, arrays):
    floor, prior_warmup = ARMS[arm]
    encoders._MIN_SCALE = FLOORS[floor]
    train_ds = data.digits_dataset("train", batch_size=args.batch_size, seed=seed,
                                   arrays={"train_probs": arrays["train_probs"],
                                           "train_labels": arrays["train_labels"]})
    val_ds = tf.data.Dataset.from_tensor_slices(arrays["val_x"]).batch(args.batch_size)
    model = mim_digits.build(name, args, seed, arrays["train_probs"])
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
    trace = ScaleTrace(arrays["val_x"])
    start, cpu = time.time(), time.process_time()
    callbacks = mim_digits.callbacks_for(name, args.warmup) + [trace]
    if prior_warmup:
        callbacks.append(KLWarmup(args.warmup, start=0.0))
    history = model.fit(train_ds, epochs=args.epochs, validation_data=val_ds, verbose=0,
                        callbacks=callbacks)
    row = {"model": name, "arm": arm, "min_scale": FLOORS[floor],
           "prior_warmup": prior_warmup, "seed": seed,
           "epochs": len(history.history["loss"])}
    row.update(mim_digits.evaluate(model, arrays, args, seed))
    row.update(seconds=time.time() - start, cpu_seconds=time.process_time() - cpu,
               trace=trace.trace)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["amim", "mim", "vae"],
                        choices=mim_digits.MODELS)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--out", default="experiments/results/mim_collapse")
    args = parser.parse_args(argv)
    # mim_digits' defaults for everything else (latent 8, 2x128 tanh, 100 pseudo-inputs,
    # warm-up 20 = patience, batch 128, IWAE-1000 NLL).
    for key, value in dict(latent=8, hidden=128, pseudo_inputs=100, warmup=20,
                           batch_size=128, nll_samples=1000).items():
        setattr(args, key, value)
    os.makedirs(args.out, exist_ok=True)
    arrays = mim_digits.split_digits()
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            for name in args.models:
                if name == "vae" and ARMS[arm][1]:
                    continue  # the VAE already warms its KL weight up
                row = run(name, arm, seed, args, arrays)
                rows.append(row)
                brief = {k: (round(v, 3) if isinstance(v, float) else v)
                         for k, v in row.items() if k != "trace"}
                brief["final_log_sigma"] = round(row["trace"][-1]["log_sigma"], 2)
                print(json.dumps(brief), flush=True)
                tmp = os.path.join(args.out, ".results.json.tmp")
                with open(tmp, "w") as f:
                    json.dump({"args": vars(args), "runs": rows,
                               "load_average": os.getloadavg()}, f, indent=1)
                os.replace(tmp, os.path.join(args.out, "results.json"))
    print(f"{'model':6} {'arm':27} {'seed':>4} {'ep':>4} {'nll':>7} {'mi_q':>6} "
          f"{'knn5':>6} {'log_sigma':>9} {'log_p(z)':>9}")
    for r in rows:
        last = r["trace"][-1]
        print(f"{r['model']:6} {r['arm']:27} {r['seed']:>4} {r['epochs']:>4} {r['nll']:7.2f} "
              f"{r['mi_q']:6.2f} {r['knn5']:6.3f} {last['log_sigma']:9.2f} "
              f"{last['log_prior']:9.2f}")


if __name__ == "__main__":
    main()
