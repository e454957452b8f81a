"""beta-TCVAE on dSprites (Chen et al. 2018) in the setup of Locatello et al. 2019.

beta_vae.py's conv VAE (Adam 1e-4, batch 64, 300k steps) with the loss of disentanglement_lib's
`beta_tc_vae`: -ELBO + (beta - 1) * TC, TC from its minibatch estimator. beta = 6 is the middle
of the study's grid {1, 2, 4, 6, 8, 10}. Chen et al.'s estimators: `--config.loss.tc_estimator=mss`
(or `mws`), which use loss.tc_dataset_size = 737280, the dSprites grid.

  python -m experiments.run --config=experiments/beta_tcvae.py            # published setup
  python -m experiments.run --config=experiments/beta_tcvae.py:quick      # minutes on a CPU
  python -m experiments.run --config=experiments/beta_tcvae.py --config.loss.tc_estimator=mss
  python -m experiments.run --config=experiments/beta_tcvae.py:sweep      # beta x seed, one program
"""

from experiments import beta_vae, common


def get_config(arg: str | None = None):
    scale, with_sweep = common.parse_preset(arg)
    c = beta_vae.get_config(scale)
    c.loss.beta = 1.0
    c.loss.method = "beta_tcvae"
    c.loss.tc_beta = 6.0
    c.loss.tc_estimator = "minibatch"
    c.loss.tc_dataset_size = 3 * 6 * 40 * 32 * 32  # every factor combination of dSprites: 737280
    common.apply_preset(c, "beta_tcvae", arg, c.train.num_steps, "loss.tc_beta=1,2,4,6,8,10 * seed=0,1")
    if scale == "smoke" and with_sweep:
        c.sweep.spec = "loss.tc_beta=1,8 * seed=0,1"
    return c
