"""Higgins et al. 2017 on dSprites: VAE (beta = 1) against beta-VAE (beta = 4), several seeds.

One vmapped program trains all members (beta x seed); the disentanglement scores
of every member land in sweep_results.csv. The PCA / ICA / raw-pixel baselines of
the paper's Table/Fig. 6 come from `python -m benchmarks.disentanglement`.
Published beta-VAE metric: beta-VAE 99.23%, VAE 61.58%, PCA 84.9% (Higgins et al. 2017, Table 1).

  python -m experiments.run --config=experiments/ablations/higgins2017_dsprites.py
  python -m experiments.run --config=experiments/ablations/higgins2017_dsprites.py:quick   # CPU scale
"""

from experiments import beta_vae, common


def get_config(arg: str | None = None):
    scale, _ = common.parse_preset(arg)
    c = beta_vae.get_config(scale)
    c.sweep.spec = "loss.beta=1,4 * seed=0,1,2"
    c.name = "higgins2017_dsprites" + (f"_{scale}" if scale else "")
    if scale == "quick":  # 4 members in one program, sized for a 2-core CPU (docs/results.md: its time)
        c.sweep.spec = "loss.beta=1,4 * seed=0,1"
        c.train.batch_size = 32
        c.train.num_steps = 2500
        # The paper's own metric first: beta_vae.py's quick preset keeps the sample-based ones only.
        c.eval.disentanglement = ("beta_vae_score", "factor_vae_score", "mig", "dci", "sap")
    if scale == "smoke":
        c.sweep.spec = "loss.beta=1,4 * seed=0"
    return c
