"""Capacity-annealed beta-VAE of Burgess et al. 2018 on dSprites: gamma = 1000, C_max = 25 nats
reached linearly over 100k steps; `:sweep` sweeps C_max (Locatello et al. 2019's AnnealedVAE
column: C_max in {5, 10, 25, 50, 75, 100}).

  python -m experiments.run --config=experiments/ablations/burgess2018_capacity.py
  python -m experiments.run --config=experiments/ablations/burgess2018_capacity.py:sweep
"""

from experiments import beta_vae, common


def get_config(arg: str | None = None):
    scale, with_sweep = common.parse_preset(arg)
    c = beta_vae.get_config(scale)
    c.loss.beta = 1.0
    c.loss.gamma = 1000.0
    c.loss.c_max = 25.0
    c.loss.anneal_steps = 100_000.0
    c.name = "burgess2018_capacity" + "".join(f"_{w}" for w in (arg or "").split(",") if w)
    if scale == "quick":
        c.loss.anneal_steps = float(c.train.num_steps)
    if scale == "smoke":
        c.loss.anneal_steps = 8.0
    if with_sweep:
        c.sweep.spec = "loss.c_max=5,10,25,50,75,100 * seed=0,1" if scale != "smoke" else "loss.c_max=5,25"
    return c
