"""IWAE of Burda et al. 2016 on dynamically binarized MNIST, with the paper's optimization.

One stochastic layer as in vae.py (784-200-200-50, tanh as in the paper), trained on the
importance-weighted bound L_k with k = 50 samples; Adam (0.9, 0.999, eps 1e-4), batch 20 and
3^i passes over the 60,000 training images at learning rate 1e-3 * 10^(-i/7), i = 0..7
(3,280 passes, 9.84M steps). The variants of Burda et al.'s Table 1 and of Rainforth et al.
2018 are flags of this file:

  python -m experiments.run --config=experiments/iwae.py --config.data.local_dir=DIR
  ... --config.loss.num_samples=5                        # IWAE k = 5
  ... --config.loss.objective=elbo                        # VAE k = 50 (the ELBO averaged over k)
  ... --config.model.name=vae2 --config.model.hidden=50,50  # two stochastic layers
  ... --config.loss.objective=miwae --config.loss.num_samples=8 --config.loss.num_outer=8
  ... --config.loss.objective=piwae --config.loss.num_samples=8 --config.loss.num_outer=8
  ... --config.loss.objective=ciwae --config.loss.ciwae_beta=0.05
  ... --config.model.prior=vamp                            # VampPrior, 500 pseudo-inputs

`quick` keeps the schedule's shape but shortens it: 5 stages whose first lasts 20 steps
(2,420 steps, 48,400 images: under one pass) with k = 5; a CPU gets through it in minutes.
`smoke` runs 12 steps of 3 stages.
"""

from experiments import common, vae

TWO_LAYER_HIDDEN = (50, 50)  # the top layer of Burda et al.'s two-layer model; bottom: model.bottom_*


def get_config(arg: str | None = None):
    c = vae.get_config()
    c.model.activation = "tanh"
    c.loss.objective = "iwae"
    c.loss.num_samples = 50
    common.use_burda_schedule(c, stage0_steps=60_000 // c.train.batch_size, num_stages=8)
    c.train.checkpoint_every = 50_000
    c.train.log_every = 3000
    c.eval.every = 500_000
    preset, _ = common.parse_preset(arg)
    steps = c.train.num_steps
    common.apply_preset(c, "iwae", arg, quick_steps=2420)
    if preset is None:
        c.train.num_steps = steps
    elif preset == "quick":
        common.use_burda_schedule(c, stage0_steps=20, num_stages=5)
        c.loss.num_samples = 5
        c.eval.iwae_k = 1000
    else:  # smoke
        common.use_burda_schedule(c, stage0_steps=1, num_stages=3)
        c.train.num_steps = 12
        c.loss.num_samples = 3
    return c
