"""VQ-VAE with and without the EMA codebook across commitment costs (van den Oord et al. 2017,
Sec. 3.2 and App. A.1): structural (EMA on/off) x numeric (commitment) sweep; EMA on and off
run as two programs, the commitment costs of each as one vmapped program.

  python -m experiments.run --config=experiments/ablations/vqvae_ema_commitment.py
"""

from experiments import common, vq_vae


def get_config(arg: str | None = None):
    scale, _ = common.parse_preset(arg)
    c = vq_vae.get_config(scale)
    c.model.vq.restart_threshold = 0.0  # restart needs EMA; keep the two arms comparable
    c.sweep.spec = "model.vq.ema=true,false * loss.commitment_cost=0.1,0.25,0.5,1,2"
    c.name = "vqvae_ema_commitment" + (f"_{scale}" if scale else "")
    if scale == "smoke":
        c.sweep.spec = "model.vq.ema=true,false * loss.commitment_cost=0.1,1"
    return c
