"""Residual-VQ VAE on Fashion-MNIST: the VQ-VAE of vq_vae.py with 4 residual quantizers
(Zeghidour et al. 2021, SoundStream) of 256 EMA codes each, dead-code restart, k-means
initialisation from the first batch and quantizer dropout; 4 codes per position of the 7x7
grid. Its PixelCNN prior reads the levels interleaved along the grid's width (models/code_prior.py).

  python -m experiments.run --config=experiments/rvq_vae.py:quick
  python -m experiments.run --config=experiments/vq_prior.py:quick \
      --config.prior.vqvae_workdir=runs/rvq_vae_quick
"""

from experiments import vq_vae


def get_config(arg: str | None = None):
    c = vq_vae.get_config(arg)
    c.model.vq.kind = "rvq"
    c.model.vq.num_levels = 4
    c.model.vq.num_codes = 256
    c.model.vq.dropout = True
    c.model.vq.kmeans_init = 10
    c.name = c.name.replace("vq_vae", "rvq_vae", 1)
    return c
