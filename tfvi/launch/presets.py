"""Named flag presets (`--preset=<name>`); flags given explicitly override them.

Each preset is the configuration of one experiment of the papers (PAPERS.md), at the
paper's scale unless its name says otherwise. The `xu_*` presets are Xu et al.'s
("On the Necessity and Effectiveness of Learning the Prior of Variational
Auto-Encoder") Table 1 / Table B.3 runs on the TFDS sets: they read the data from
`--data_dir` (nothing is downloaded) and train 2,400 epochs, practical on a GPU only.
"""

import math

PAPER_SCALE_NOTE = ("The xu_* presets (Xu et al., Table 1 / B.3) need the TFDS data in "
                    "--data_dir and a GPU to be practical; mim_fig3_fashion_mnist needs "
                    "--data_dir with TFDS fashion_mnist.")

PRESETS = {
    # The README's main job (the no-flag default): SIWAE mixture VAE on digits.
    "digits_siwae": dict(dataset="digits", model="vae", objective="siwae",
                         posterior="mixture", components=5, samples=10, latent_dim=8,
                         epochs=40),
    # A quick smoke run (seconds).
    "smoke": dict(dataset="digits", encoder_hidden=["32"], decoder_hidden=["32"],
                  latent_dim=2, components=2, samples=2, epochs=2, eval_iwae_samples=50,
                  eval_max_examples=200),
    # Xu et al. / Ding & Freedman MNIST VAE: 2x200 tanh MLPs, 50-d latent, IWAE k=50 style runs.
    "mnist_iwae": dict(dataset="mnist", posterior="gaussian", components=1,
                       objective="iwae", samples=50, latent_dim=50, epochs=3280,
                       lr_schedule="burda", eval_iwae_samples=5000,
                       validation_fraction=1 / 6),
    # Morningstar et al. B.1: single-column MNIST VIB-style VAE with a mixture posterior.
    "single_column_mnist": dict(dataset="mnist", view="single_column", target="input",
                                posterior="mixture", components=5, samples=5,
                                objective="siwae", latent_dim=2, covariance="full",
                                encoder_hidden=["128"] * 4, decoder_hidden=["128"] * 4,
                                activation="elu", prior="mog", epochs=50,
                                lr_schedule="step"),
    # Morningstar et al. B.1 on single-column digits (one cell of experiments/mixtures_reproduction.py's grid):
    # VIB, K=5 SIWAE, T=5, beta=0.05, Adam 1e-3 halved halfway (B.1: every 15000 of its
    # 30000 steps). 200 epochs of 30 steps at batch 50 = 6000 steps: B.1's 50 epochs
    # would be 1500 steps on digits, where every model is still underfit.
    "single_column_digits_vib": dict(dataset="digits", model="vib", view="single_column",
                                     target="label", posterior="mixture", components=5,
                                     samples=5, objective="siwae", beta=0.05, latent_dim=2,
                                     covariance="full", encoder_hidden=["128"] * 4,
                                     activation="elu", prior="mog", epochs=200,
                                     batch_size=50, lr_schedule="step", lr_decay_steps=3000,
                                     predict_samples=1000),
    # Morningstar et al. C.7 style modality: the full image in, a random image of the same class
    # (fresh each epoch) scored; K=5 full-covariance components in a 2-d latent (C.6's
    # full-image setting), B.2's skip-connected decoder and mixture prior. Digits scale:
    # 100 epochs (B.2) at lr 1e-3 (B.2's 1e-4 is for MNIST's 600 steps per epoch).
    "style_modality_digits": dict(dataset="digits", model="vae", view="full",
                                  target="same_class_random", posterior="mixture",
                                  components=5, samples=5, objective="siwae",
                                  latent_dim=2, covariance="full",
                                  encoder_hidden=["128"] * 4, decoder_hidden=["128"] * 2,
                                  activation="elu", skip=True, prior="mog",
                                  prior_components=20, epochs=100, batch_size=50),
    # Livne et al. (MIM, Fig. 3): MIM on Fashion-MNIST projected onto its first 20
    # principal components (fitted on the training split), Gaussian encoder and decoder,
    # a VampPrior, batch 128 (section 5); one cell of the figure's sweep over
    # --latent_dim in 2..20 (compare --model=vae). Needs --data_dir with TFDS
    # fashion_mnist; experiments/mim_pca20.py runs the whole figure at CPU scale.
    "mim_fig3_fashion_mnist": dict(dataset="fashion_mnist", view="pca20", model="mim",
                                   objective="mim", posterior="gaussian", components=1,
                                   likelihood="gaussian", prior="vamp", pseudo_inputs=100,
                                   latent_dim=10, encoder_hidden=["128"] * 2,
                                   decoder_hidden=["128"] * 2, batch_size=128, epochs=100,
                                   mim_warmup_epochs=10),
    # Morningstar et al.'s |z| toy: known likelihood, 4-modal posterior, 2-d latent.
    "abs_toy_siwae": dict(dataset="abs_toy", likelihood="known", latent_dim=2,
                          posterior="mixture", components=4, samples=10,
                          objective="siwae", epochs=50),
}


def _xu_et_al(architecture, prior, dataset):
    """Xu et al. (Table 1; ConvVAE in Table B.3), Appendix B.3: one 40-d Gaussian latent,
    Adam at batch 128 for 2,400 epochs, KL warm-up over the first 100, the learning rate
    divided by 10 every 800 epochs (MNIST: from 1e-3) or after 1,600 (StaticMNIST: from
    1e-4); the Real NVP prior has flow depth K = 20. NLL with 1,000 IWAE samples on the
    whole test set. StaticMNIST's early stopping on validation NLL is left out."""
    train_size, lr, decay_epochs = {"mnist": (60000, 1e-3, 800),
                                    "binarized_mnist": (50000, 1e-4, 1600)}[dataset]
    preset = dict(dataset=dataset, model="vae", architecture=architecture,
                  posterior="gaussian", components=1, objective="elbo", samples=1,
                  latent_dim=40, batch_size=128, epochs=2400, kl_warmup_epochs=100,
                  learning_rate=lr, lr_schedule="step", lr_decay_rate=0.1,
                  lr_decay_steps=decay_epochs * math.ceil(train_size / 128),
                  eval_iwae_samples=1000, eval_max_examples=0, prior=prior)
    if prior == "realnvp":
        preset.update(prior_depth=20, qz_regularizer=1.0)
    return preset


for _architecture, _table in (("dense_vae", "table1"), ("resnet_vae", "table1"),
                              ("conv_vae", "table_b3")):
    for _prior in ("normal", "realnvp"):
        for _dataset, _data_name in (("mnist", "mnist"), ("binarized_mnist", "static_mnist")):
            PRESETS[f"xu_{_table}_{_architecture}_{_prior}_{_data_name}"] = _xu_et_al(
                _architecture, _prior, _dataset)
