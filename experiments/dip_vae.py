"""DIP-VAE-I and -II on dSprites (Kumar et al. 2018) in the setup of Locatello et al. 2019.

beta_vae.py's conv VAE (Adam 1e-4, batch 64, 300k steps) with KL weight 1 plus
lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2, C the batch covariance of the
posterior means (I) or of the aggregate posterior (II) (disentanglement_lib's `dip_vae`).
lambda_od = 10 is in the middle of the study's grid {1, 2, 5, 10, 20, 50}; lambda_d = 10 lambda_od
for I and lambda_od for II, as in the study. The word `ii` in the preset selects DIP-VAE-II
(it sets loss.method = 'dip_vae_ii' and loss.dip_lambda_d_factor = 1).

  python -m experiments.run --config=experiments/dip_vae.py               # DIP-VAE-I, published setup
  python -m experiments.run --config=experiments/dip_vae.py:ii            # DIP-VAE-II
  python -m experiments.run --config=experiments/dip_vae.py:quick,ii      # minutes on a CPU
  python -m experiments.run --config=experiments/dip_vae.py:sweep         # lambda_od x seed, one program
"""

from experiments import beta_vae, common

DIP_TYPES = {"i": ("dip_vae_i", 10.0), "ii": ("dip_vae_ii", 1.0)}  # method, lambda_d / lambda_od


def get_config(arg: str | None = None):
    words = [w for w in (arg or "").split(",") if w]
    kinds = [w for w in words if w in DIP_TYPES] or ["i"]
    if len(kinds) > 1:
        raise ValueError(f"preset {arg!r} names two DIP types; choose 'i' or 'ii'")
    preset = ",".join(w for w in words if w not in DIP_TYPES)
    scale, with_sweep = common.parse_preset(preset)
    c = beta_vae.get_config(scale)
    c.loss.beta = 1.0
    c.loss.method, c.loss.dip_lambda_d_factor = DIP_TYPES[kinds[0]]
    c.loss.dip_lambda_od = 10.0
    name = c.loss.method
    common.apply_preset(c, name, preset, c.train.num_steps, "loss.dip_lambda_od=1,2,5,10,20,50 * seed=0,1")
    if scale == "smoke" and with_sweep:
        c.sweep.spec = "loss.dip_lambda_od=1,20 * seed=0,1"
    return c
