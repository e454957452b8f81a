"""The autoregressive (PixelCNN) prior over the code grid of a trained VQ-VAE, so it can sample.

Train the VQ-VAE first, then point this at its workdir:

  python -m experiments.run --config=experiments/vq_vae.py:quick
  python -m experiments.run --config=experiments/vq_prior.py:quick \
      --config.prior.vqvae_workdir=runs/vq_vae_quick

Any quantizer's codes work: FSQ's grid indices (fsq_vae.py) and residual VQ's levels, read
interleaved along the grid's width (rvq_vae.py; vae_jax/models/code_prior.py).
"""

import ml_collections

from experiments import common


def get_config(arg: str | None = None):
    c = common.base_config()
    c.data.name = "fashion_mnist"
    c.model.name = "vq_prior"
    c.prior = ml_collections.ConfigDict()
    c.prior.vqvae_workdir = "runs/vq_vae"
    c.prior.features = 128
    c.prior.layers = 5
    c.optim.learning_rate = 1e-3
    c.train.batch_size = 128
    c.train.num_steps = 20_000
    common.apply_preset(c, "vq_prior", arg, quick_steps=2000)
    preset = common.parse_preset(arg)[0]
    if preset:
        c.prior.vqvae_workdir = f"runs/vq_vae_{preset}"
    if preset == "smoke":
        c.prior.features, c.prior.layers = 16, 1
    return c
