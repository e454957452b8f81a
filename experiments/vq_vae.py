"""VQ-VAE on Fashion-MNIST: van den Oord et al. 2017 (K = 512, D = 64, commitment 0.25, EMA 0.99).

Conv encoder (two stride-2 layers: a 7x7 grid of 64-d codes) and deconv decoder,
Gaussian likelihood, Adam 2e-4, batch 128, EMA codebook with dead-code restart.
CIFAR-10 is one override away (it needs network access for TFDS):

  python -m experiments.run --config=experiments/vq_vae.py
  python -m experiments.run --config=experiments/vq_vae.py --config.data.name=cifar10
  python -m experiments.run --config=experiments/vq_vae.py:quick --config.model.vq.ema=False
"""

from experiments import common


def get_config(arg: str | None = None):
    c = common.base_config()
    c.data.name = "fashion_mnist"
    c.model.name = "vqvae"
    c.model.encoder = "conv"
    c.model.channels = (64, 128)
    c.model.vq.num_codes = 512
    c.model.vq.code_dim = 64
    c.model.vq.ema = True
    c.model.vq.decay = 0.99
    c.model.vq.restart_threshold = 0.01
    c.loss.likelihood = "gaussian"
    c.loss.log_scale = -2.0  # sigma ~ 0.14: the reconstruction term dominates as in the paper's MSE
    c.loss.commitment_cost = 0.25
    c.optim.learning_rate = 2e-4
    c.train.batch_size = 128
    c.train.num_steps = 250_000
    c.eval.every = 50_000
    common.apply_preset(c, "vq_vae", arg, quick_steps=2000)
    if common.parse_preset(arg)[0] == "quick":
        c.optim.learning_rate = 1e-3
    return c
