"""Gradient estimators and codebook options of VQ-VAE, side by side: straight-through vs the
rotation trick (Fifty et al. 2024), each with and without k-means initialisation and cosine
codes. All eight members differ in structure, so they run as eight programs of one sweep;
each member's codebook usage and perplexity over the whole eval set land in sweep_results.csv.

The `lucidrains` preset is the setting of vector-quantize-pytorch's examples: a small conv
autoencoder (16, 32 channels, a 7x7 grid of 32-d latents), 256 codes, 1000 steps of batch 256,
AdamW 3e-4, learned (non-EMA) codebooks, commitment 0.25; its members are straight-through,
rotation trick, FSQ (levels (8, 6, 5), 240 codes) and residual VQ (4 levels of 256 codes).

  python -m experiments.run --config=experiments/ablations/vq_estimators.py
  python -m experiments.run --config=experiments/ablations/vq_estimators.py:lucidrains
"""

from experiments import common, vq_vae

SPEC = "model.vq.estimator=straight_through,rotation * model.vq.kmeans_init=0,10 * model.vq.cosine=false,true"
SIDE_BY_SIDE = (
    "model.vq.kind=vq,vq,fsq,rvq"
    " | model.vq.estimator=straight_through,rotation,straight_through,straight_through"
)


def get_config(arg: str | None = None):
    words = [w for w in (arg or "").split(",") if w]
    lucidrains = "lucidrains" in words
    scale, _ = common.parse_preset(",".join(w for w in words if w != "lucidrains"))
    c = vq_vae.get_config(scale)
    c.model.vq.ema, c.model.vq.restart_threshold = False, 0.0  # the estimators train the codebook
    c.sweep.spec = SPEC
    c.name = "_".join(["vq_estimators", *words])
    if lucidrains:
        _lucidrains(c)
    if scale == "smoke" and not lucidrains:  # every option once, in two programs
        c.sweep.spec = (
            "model.vq.estimator=straight_through,rotation"
            " | model.vq.kmeans_init=0,2 | model.vq.cosine=false,true"
        )
    return c


def _lucidrains(c) -> None:
    """vector-quantize-pytorch's examples/autoencoder.py setting, on Fashion-MNIST."""
    c.model.channels = (16, 32)
    c.model.vq.num_codes, c.model.vq.code_dim = 256, 32
    c.model.vq.encoder_dim = 32  # FSQ projects the 32 channels to its 3 and back
    c.model.vq.num_levels = 4
    c.optim.name, c.optim.learning_rate = "adamw", 3e-4
    c.train.batch_size, c.train.num_steps = 256, 1000
    c.train.log_every, c.eval.every = 100, 1000
    c.sweep.spec = SIDE_BY_SIDE
