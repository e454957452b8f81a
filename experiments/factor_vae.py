"""FactorVAE on dSprites (Kim & Mnih 2018) in the setup of Locatello et al. 2019.

beta_vae.py's conv VAE (Adam 1e-4, batch 64, 300k steps) with KL weight 1 plus gamma * TC, the
total correlation estimated by an MLP discriminator (6 x 1000 leaky ReLU, 2 logits) that its own
Adam(1e-4, b1=0.5, b2=0.9) trains in the same step on the batch's codes against their
dimension-wise permutation (disentanglement_lib's `factor_vae`, `fc_discriminator`).
gamma = 30 is the middle of the study's grid {10, 20, 30, 40, 50, 100}.

  python -m experiments.run --config=experiments/factor_vae.py            # published setup
  python -m experiments.run --config=experiments/factor_vae.py:quick      # minutes on a CPU
  python -m experiments.run --config=experiments/factor_vae.py --config.loss.factor_gamma=10.0
  python -m experiments.run --config=experiments/factor_vae.py:sweep      # gamma x seed, one program
"""

from experiments import beta_vae, common


def get_config(arg: str | None = None):
    scale, with_sweep = common.parse_preset(arg)
    c = beta_vae.get_config(scale)
    c.loss.beta = 1.0
    c.loss.method = "factor_vae"
    c.loss.factor_gamma = 30.0
    common.apply_preset(
        c, "factor_vae", arg, c.train.num_steps, "loss.factor_gamma=10,20,30,40,50,100 * seed=0,1"
    )
    if scale == "smoke":
        c.model.disc_hidden = (64, 64)  # seconds, not the published 6 x 1000
        if with_sweep:
            c.sweep.spec = "loss.factor_gamma=10,40 * seed=0,1"
    return c
