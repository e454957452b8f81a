"""FSQ-VAE on Fashion-MNIST: the VQ-VAE of vq_vae.py with finite scalar quantization
(Mentzer et al. 2023) in place of the codebook: levels (8, 5, 5, 5), about 1000 codes, the
paper's set for 2^10. The 64-channel encoder output is projected to the 4 FSQ channels and
back; there is no codebook or commitment loss, so the loss is the reconstruction NLL alone.

  python -m experiments.run --config=experiments/fsq_vae.py:quick
  python -m experiments.run --config=experiments/vq_prior.py:quick \
      --config.prior.vqvae_workdir=runs/fsq_vae_quick
"""

from experiments import vq_vae


def get_config(arg: str | None = None):
    c = vq_vae.get_config(arg)
    c.model.vq.kind = "fsq"
    c.model.vq.fsq_levels = (8, 5, 5, 5)
    c.model.vq.num_codes = 1024  # the size the levels were chosen for (prod = 1000)
    c.model.vq.encoder_dim = 64  # encoder channels, projected to len(fsq_levels) = 4
    c.model.vq.ema, c.model.vq.restart_threshold = False, 0.0  # no codebook to average or restart
    c.name = c.name.replace("vq_vae", "fsq_vae", 1)
    return c
