"""Pythae (PyTorch) VAE / IWAE training throughput on the shapes of train_throughput.py.

    python benchmarks/pythae_throughput.py     # needs `pip install ".[pythae]"`

Side-by-side reference for `benchmarks/train_throughput.py` (not a tfvi dependency):
  (a) pythae VAE, 64-d binary data (the digits), MLP 2x200 tanh, latent 8, batch 100;
  (b) pythae IWAE, number_samples=50, 784-d binary data, 784-200-200-50 tanh, batch 128.
Same architectures, Bernoulli likelihood ("bce"), Adam(1e-3). Each step is what
pythae's trainer does per batch (`model({"data": x}).loss.backward(); optimizer.step()`)
without the trainer's logging. Timing: `1 + repeats` blocks of steps, the first block
(warm-up) excluded, median step time. Writes `benchmarks/results/pythae_throughput.json`.
When torch or pythae is not installed it prints why and exits 0 (they are optional).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

CONFIGS = {
    "digits_elbo": dict(label="(a) pythae VAE, 64-d, 2x200 tanh, d=8, batch 100",
                        model="vae", input_dim=64, latent_dim=8, batch_size=100, samples=1,
                        steps=100),
    "iwae50_784": dict(label="(b) pythae IWAE k=50, 784-200-200-50, batch 128",
                       model="iwae", input_dim=784, latent_dim=50, batch_size=128,
                       samples=50, steps=10),
}


def _import_pythae():
    try:
        import torch
        import pythae  # noqa: F401
    except ImportError as err:
        return None, str(err)
    return torch, None


def binary_data(input_dim, n=2048, seed=0):
    import numpy as np

    if input_dim == 64:
        from sklearn.datasets import load_digits

        probs = load_digits().data / 16.0
        rng = np.random.default_rng(seed)
        return (rng.uniform(size=probs.shape) < probs).astype(np.float32)
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 10)) @ rng.normal(size=(10, input_dim)) - 1.0
    return (rng.uniform(size=logits.shape) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def build(torch, cfg):
    from pythae.models import IWAE, VAE, IWAEConfig, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    d, h, x_dim = cfg["latent_dim"], 200, cfg["input_dim"]

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.trunk = torch.nn.Sequential(torch.nn.Linear(x_dim, h), torch.nn.Tanh(),
                                             torch.nn.Linear(h, h), torch.nn.Tanh())
            self.mu, self.log_var = torch.nn.Linear(h, d), torch.nn.Linear(h, d)

        def forward(self, x):
            hidden = self.trunk(x)
            return ModelOutput(embedding=self.mu(hidden), log_covariance=self.log_var(hidden))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(),
                                           torch.nn.Linear(h, h), torch.nn.Tanh(),
                                           torch.nn.Linear(h, x_dim), torch.nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))

    if cfg["model"] == "vae":
        config = VAEConfig(input_dim=(x_dim,), latent_dim=d, reconstruction_loss="bce")
        return VAE(model_config=config, encoder=Encoder(), decoder=Decoder())
    config = IWAEConfig(input_dim=(x_dim,), latent_dim=d, reconstruction_loss="bce",
                        number_samples=cfg["samples"])
    return IWAE(model_config=config, encoder=Encoder(), decoder=Decoder())


def measure(torch, name, cfg, repeats, seed=0):
    torch.manual_seed(seed)
    data = torch.from_numpy(binary_data(cfg["input_dim"]))
    model = build(torch, cfg)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    bs, steps = cfg["batch_size"], cfg["steps"]
    batches = [data[i:i + bs] for i in range(0, len(data) - bs + 1, bs)]
    block_times, step = [], 0
    for _ in range(1 + repeats):
        start = time.perf_counter()
        for _ in range(steps):
            x = batches[step % len(batches)]
            step += 1
            optimizer.zero_grad()
            loss = model({"data": x}, epoch=0).loss
            loss.backward()
            optimizer.step()
        block_times.append(time.perf_counter() - start)
    step_times = [t / steps for t in block_times[1:]]
    median = statistics.median(step_times)
    return {"config": name, "label": cfg["label"], "batch_size": bs,
            "step_ms_median": 1e3 * median, "step_ms_min": 1e3 * min(step_times),
            "step_ms_max": 1e3 * max(step_times), "examples_per_s": bs / median,
            "final_loss": float(loss.detach())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default, one per core)")
    parser.add_argument("--output", default=os.path.join(RESULTS, "pythae_throughput.json"))
    args = parser.parse_args(argv)
    torch, missing = _import_pythae()
    if torch is None:
        print(f"skipped: pythae/torch not installed ({missing}); they are optional and not "
              "tfvi dependencies: `pip install '.[pythae]'` to compare.")
        return None
    import pythae

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name, cfg in CONFIGS.items():
        rows.append(measure(torch, name, cfg, args.repeats))
        print(f"  {name:<12} {rows[-1]['examples_per_s']:9.0f} examples/s", file=sys.stderr)
    print(f"\n{'configuration':<50} {'examples/s':>11} {'step ms':>9}")
    for r in rows:
        print(f"{r['label']:<50} {r['examples_per_s']:>11.0f} {r['step_ms_median']:>9.2f}")
    result = {"benchmark": "pythae_throughput", "rows": rows, "repeats": args.repeats,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "torch": torch.__version__,
                          "pythae": getattr(pythae, "__version__", "0.1.2?"),
                          "torch_threads": torch.get_num_threads(),
                          "load_average": os.getloadavg()}}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(args.output + ".tmp", args.output)
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
