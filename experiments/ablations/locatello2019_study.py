"""The unsupervised study of Locatello et al. 2019 (disentanglement_lib's `unsupervised_study_v1`)
on dSprites: six methods, each over its grid of the study (Table / Section 5 and App. of the paper)
x seeds. Every method's grid is one vmapped program (a sub-spec of the union `+`), run one
after another; the paper trained 50 seeds, here `NUM_SEEDS`.

  beta_vae      beta in {1, 2, 4, 6, 8, 16}
  annealed_vae  C_max in {5, 10, 25, 50, 75, 100} nats, gamma = 1000, C reached at 100k steps
  factor_vae    gamma in {10, 20, 30, 40, 50, 100}
  dip_vae_i     lambda_od in {1, 2, 5, 10, 20, 50}, lambda_d = 10 lambda_od
  dip_vae_ii    lambda_od in {1, 2, 5, 10, 20, 50}, lambda_d = lambda_od
  beta_tcvae    beta in {1, 2, 4, 6, 8, 10}

Members: 6 grids x 6 values x NUM_SEEDS = 180 (1800 with the paper's 50 seeds), 300k steps of
batch 64 each, in 6 programs of 30 members; `quick` trains 2 seeds (72 members).

Preset words: a scale (`smoke`, `quick`) and/or method names; no method = the whole study.
`mid` trains one hyperparameter per method from the middle of its grid (`MID`), plus beta = 1 in
the beta-VAE's program as the reference, and evaluates every metric of the study: the CPU-scale
comparison of the six methods (`:quick,mid`: 2 seeds, 1,500 steps each, README's results table).

  python -m experiments.run --config=experiments/ablations/locatello2019_study.py              # all six
  python -m experiments.run --config=experiments/ablations/locatello2019_study.py:factor_vae   # one
  python -m experiments.run --config=experiments/ablations/locatello2019_study.py:quick,dip_vae_ii
  python -m experiments.run --config=experiments/ablations/locatello2019_study.py:quick,mid
"""

from experiments import beta_vae, common

NUM_SEEDS = 5
GRIDS = {
    "beta_vae": "loss.method=vae * loss.beta=1,2,4,6,8,16",
    "annealed_vae": "loss.method=vae * loss.gamma=1000 * loss.c_max=5,10,25,50,75,100",
    "factor_vae": "loss.method=factor_vae * loss.factor_gamma=10,20,30,40,50,100",
    "dip_vae_i": "loss.method=dip_vae_i * loss.dip_lambda_d_factor=10 * loss.dip_lambda_od=1,2,5,10,20,50",
    "dip_vae_ii": "loss.method=dip_vae_ii * loss.dip_lambda_d_factor=1 * loss.dip_lambda_od=1,2,5,10,20,50",
    "beta_tcvae": "loss.method=beta_tcvae * loss.tc_beta=1,2,4,6,8,10",
}
# One value from the middle of each grid (those of factor_vae.py, dip_vae.py and beta_tcvae.py), and
# beta = 1 beside the beta-VAE's: the reference every method is compared with.
MID_GRIDS = {
    "beta_vae": "loss.method=vae * loss.beta=1,6",
    "annealed_vae": "loss.method=vae * loss.gamma=1000 * loss.c_max=25",
    "factor_vae": "loss.method=factor_vae * loss.factor_gamma=30",
    "dip_vae_i": "loss.method=dip_vae_i * loss.dip_lambda_d_factor=10 * loss.dip_lambda_od=10",
    "dip_vae_ii": "loss.method=dip_vae_ii * loss.dip_lambda_d_factor=1 * loss.dip_lambda_od=10",
    "beta_tcvae": "loss.method=beta_tcvae * loss.tc_beta=6",
}
# Every metric of the study (the pair-based scores encode the dSprites grid once per member).
ALL_METRICS = (
    "beta_vae_score",
    "factor_vae_score",
    "mig",
    "dci",
    "sap",
    "modularity_explicitness",
    "unsupervised",
)
# Smoke: two grid points and one seed per method, two steps of each grid's program in a test.
SMOKE_GRIDS = {
    "beta_vae": "loss.method=vae * loss.beta=1,16",
    "annealed_vae": "loss.method=vae * loss.gamma=1000 * loss.c_max=5,100",
    "factor_vae": "loss.method=factor_vae * loss.factor_gamma=10,100",
    "dip_vae_i": "loss.method=dip_vae_i * loss.dip_lambda_d_factor=10 * loss.dip_lambda_od=1,50",
    "dip_vae_ii": "loss.method=dip_vae_ii * loss.dip_lambda_d_factor=1 * loss.dip_lambda_od=1,50",
    "beta_tcvae": "loss.method=beta_tcvae * loss.tc_beta=1,10",
}


def study_spec(methods, grids=None, num_seeds: int = NUM_SEEDS) -> str:
    """The sweep spec of `methods`: the union of their grids, each times the seeds."""
    seeds = ",".join(str(s) for s in range(num_seeds))
    return " + ".join(f"{(grids or GRIDS)[m]} * seed={seeds}" for m in methods)


def get_config(arg: str | None = None):
    words = [w for w in (arg or "").split(",") if w]
    unknown = [w for w in words if w not in GRIDS and w not in common.SCALES and w != "mid"]
    if unknown:
        raise ValueError(
            f"unknown preset {unknown[0]!r}; valid: {list(common.SCALES)}, 'mid' and {list(GRIDS)}"
        )
    methods = [w for w in words if w in GRIDS] or list(GRIDS)
    scale, _ = common.parse_preset(",".join(w for w in words if w in common.SCALES))
    c = beta_vae.get_config(scale)
    c.loss.beta = 1.0  # each grid sets its own; the methods beside beta-VAE need KL weight 1
    c.loss.anneal_steps = 100_000.0  # AnnealedVAE's C reaches c_max at 100k steps (dlib)
    c.loss.factor_gamma, c.loss.tc_beta, c.loss.dip_lambda_od = 10.0, 1.0, 1.0
    c.sweep.spec = study_spec(methods)
    if len(methods) == 1 and methods[0] not in ("beta_vae", "annealed_vae"):
        # One method's sweep: its config names it, so the study table (vae_jax.evaluate.study) does.
        c.loss.method = methods[0]
    c.name = "_".join(["locatello2019_study", *words])
    if scale == "quick":
        c.loss.anneal_steps = float(c.train.num_steps)
        c.sweep.spec = study_spec(methods, num_seeds=2)
    if "mid" in words:
        c.sweep.spec = study_spec(methods, MID_GRIDS, num_seeds=2 if scale == "quick" else NUM_SEEDS)
        c.eval.disentanglement = ALL_METRICS
        if scale == "quick":  # 14 members, every metric at the protocol: ~1 h 45 min of a 2-core CPU
            c.train.num_steps = 1500
            c.loss.anneal_steps = 1500.0
            c.eval.iwae_num_examples = 1000  # L_100 on 1,000 images (it decodes 100 per image)
    if scale == "smoke":
        c.loss.anneal_steps = 8.0
        c.model.disc_hidden = (64, 64)
        c.sweep.spec = study_spec(methods, SMOKE_GRIDS, num_seeds=1)
    return c
