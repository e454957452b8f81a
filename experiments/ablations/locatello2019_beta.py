"""The beta-VAE column of Locatello et al. 2019 on dSprites: beta in {1, 2, 4, 6, 8, 16}, 5 seeds
(the paper used 50), all members as one vmapped program per device mesh.

  python -m experiments.run --config=experiments/ablations/locatello2019_beta.py
"""

from experiments import beta_vae, common


def get_config(arg: str | None = None):
    scale, _ = common.parse_preset(arg)
    c = beta_vae.get_config(scale)
    c.sweep.spec = "loss.beta=1,2,4,6,8,16 * seed=0,1,2,3,4"
    c.name = "locatello2019_beta" + (f"_{scale}" if scale else "")
    if scale == "smoke":
        c.sweep.spec = "loss.beta=1,16"
    return c
