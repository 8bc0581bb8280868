"""The Pythae (PyTorch) side of `benchmarks/vs_pythae.py`: its models and timed blocks.

Runs in its own process (`python benchmarks/vs_pythae.py --worker torch`), so torch
and TensorFlow never share a process; torch uses 2 intra-op threads (the machine's
cores). Two variants per workload, both training the same Pythae model:

* `pythae_trainer`: Pythae's own training loop, `BaseTrainer.train_step(epoch)` (one
  epoch over its DataLoader of a `BaseDataset`, shuffled; per batch the model's loss,
  `zero_grad/backward/step`, `loss.item()` and its step callbacks, i.e. what
  `TrainingPipeline` runs between its evaluations and checkpoints);
* `pythae_step`: the same model's step on pre-batched tensors (no DataLoader), the
  bare torch step.

Models: (a) `pythae.models.VAE` and (b) `pythae.models.IWAE(number_samples=50)` with
the MLPs of `benchmarks/pythae_throughput.py` (tanh, Bernoulli "bce" likelihood);
(c) `pythae.models.VAE` with `ResnetEncoder`/`ResnetDecoder` below: the layer plan of
`tfvi.networks.resnet_vae_encoder/decoder` (Xu et al. B.2: pre-activation residual
blocks, 3x3 kernels, leaky ReLU 0.2, stride-2 blocks with 1x1 shortcuts) under a
linear head (encoder: Linear to 2 x latent; decoder: a 1x1 convolution to one channel
and a sigmoid, Pythae's "bce" wants probabilities). tfvi's L2 1e-4 on the kernels is
not reproduced (a few elementwise ops per step).
"""

import os
import tempfile
import time

ADAM_LR = 1e-3


def _modules(torch):
    nn = torch.nn
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    def act():
        return nn.LeakyReLU(0.2)  # Keras' leaky_relu slope

    class Block(nn.Module):
        """`shortcut(x) + conv2(a(conv1(a(x))))`, as `tfvi.networks.ResidualBlock`."""

        def __init__(self, c_in, c_out, stride, transpose):
            super().__init__()
            if transpose:
                conv = lambda i, o, k, s: nn.ConvTranspose2d(  # noqa: E731
                    i, o, k, s, padding=k // 2, output_padding=s - 1)
            else:
                conv = lambda i, o, k, s: nn.Conv2d(i, o, k, s, padding=k // 2)  # noqa: E731
            self.conv1, self.conv2 = conv(c_in, c_out, 3, stride), conv(c_out, c_out, 3, 1)
            self.a1, self.a2 = act(), act()
            self.shortcut = (conv(c_in, c_out, 1, stride)
                             if stride != 1 or c_in != c_out else None)

        def forward(self, x):
            y = self.conv2(self.a2(self.conv1(self.a1(x))))
            return y + (x if self.shortcut is None else self.shortcut(x))

    encoder_plan = ((32, 1), (32, 1), (64, 2), (64, 1), (64, 2), (16, 1))
    decoder_plan = ((64, 1), (64, 2), (64, 1), (32, 2), (32, 1))

    def stack(plan, c, transpose):
        blocks = []
        for c_out, s in plan:
            blocks.append(Block(c, c_out, s, transpose))
            c = c_out
        return blocks, c

    class ResnetEncoder(BaseEncoder):
        def __init__(self, latent_dim):
            super().__init__()
            blocks, _ = stack(encoder_plan, 1, transpose=False)
            self.net = nn.Sequential(*blocks, nn.Flatten())
            self.head = nn.Linear(7 * 7 * 16, 2 * latent_dim)

        def forward(self, x):
            loc, log_var = self.head(self.net(x)).chunk(2, dim=-1)
            return ModelOutput(embedding=loc, log_covariance=log_var)

    class ResnetDecoder(BaseDecoder):
        def __init__(self, latent_dim):
            super().__init__()
            blocks, c = stack(decoder_plan, 16, transpose=True)
            self.dense = nn.Sequential(nn.Linear(latent_dim, 7 * 7 * 16), act())
            self.net = nn.Sequential(*blocks, nn.Conv2d(c, 1, 1), nn.Sigmoid())

        def forward(self, z):
            h = self.dense(z).reshape(-1, 16, 7, 7)
            return ModelOutput(reconstruction=self.net(h))

    return ResnetEncoder, ResnetDecoder


def build_model(torch, spec):
    """The Pythae model of a workload spec (see `vs_pythae.WORKLOADS`)."""
    if spec["kind"] == "resnet":
        from pythae.models import VAE, VAEConfig

        encoder, decoder = _modules(torch)
        d = spec["latent_dim"]
        config = VAEConfig(input_dim=(1, 28, 28), latent_dim=d, reconstruction_loss="bce")
        return VAE(model_config=config, encoder=encoder(d), decoder=decoder(d))
    from pythae_throughput import build

    cfg = dict(model="iwae" if spec["objective"] == "iwae" else "vae",
               input_dim=spec["input_dim"], latent_dim=spec["latent_dim"],
               samples=spec["samples"])
    return build(torch, cfg)


class TorchWorkload:
    """Both Pythae variants of one workload, built from the same seed and data."""

    def __init__(self, spec, x):
        import torch
        from pythae.data.datasets import BaseDataset
        from pythae.trainers import BaseTrainer, BaseTrainerConfig

        torch.set_num_threads(int(os.environ.get("VS_PYTHAE_TORCH_THREADS", "2")))
        self.torch, self.spec = torch, spec
        data = torch.from_numpy(x)
        if spec["kind"] == "resnet":
            data = data.permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        self.data, self.batch = data, spec["batch_size"]
        torch.manual_seed(0)
        self.outdir = tempfile.TemporaryDirectory(prefix="vs_pythae_")
        config = BaseTrainerConfig(output_dir=self.outdir.name, learning_rate=ADAM_LR,
                                   per_device_train_batch_size=self.batch, no_cuda=True,
                                   optimizer_cls="Adam")
        dataset = BaseDataset(data, torch.zeros(len(data)))
        self.trainer = BaseTrainer(build_model(torch, spec), dataset, training_config=config)
        self.trainer.prepare_training()
        torch.manual_seed(0)
        self.model = build_model(torch, spec)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=ADAM_LR)
        self.batches = [data[i:i + self.batch] for i in range(0, len(data), self.batch)]
        self.epoch = 0
        self.last_loss = None

    def variants(self):
        return ["pythae_trainer", "pythae_step"]

    def run(self, variant, epochs):
        """One timed block of `epochs` epochs: (examples, wall s, process CPU s)."""
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(epochs):
            if variant == "pythae_trainer":
                self.last_loss = float(self.trainer.train_step(self.epoch))
            else:
                for x in self.batches:
                    self.optimizer.zero_grad()
                    loss = self.model({"data": x}, epoch=self.epoch).loss
                    loss.backward()
                    self.optimizer.step()
                    self.last_loss = loss.item()
            self.epoch += 1
        return len(self.data) * epochs, time.perf_counter() - t0, time.process_time() - c0

    def info(self):
        return dict(torch=self.torch.__version__, torch_threads=self.torch.get_num_threads(),
                    parameters=sum(p.numel() for p in self.model.parameters()))
