"""Probabilistic PCA (Tipping & Bishop 1999) on Fashion-MNIST, in closed form: the baseline whose
log-likelihood is exact, and which a linear VAE provably recovers (Lucas et al. 2019).

Reports exact train / test log-likelihood (nats per image, pixel intensities in [0, 1]) and bits
per dimension; writes reconstructions and samples. No training loop, no checkpoints.

  python -m experiments.run --config=experiments/ppca.py
  python -m experiments.run --config=experiments/ppca.py --config.model.latent_dim=50
"""

from experiments import common


def get_config(arg: str | None = None):
    c = common.base_config()
    c.data.name = "fashion_mnist"
    c.model.name = "ppca"
    c.model.latent_dim = 20
    c.loss.likelihood = "gaussian"
    common.apply_preset(c, "ppca", arg, quick_steps=1)
    return c
