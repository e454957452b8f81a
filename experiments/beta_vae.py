"""beta-VAE on dSprites: Higgins et al. 2017, in the setup of Locatello et al. 2019.

Conv encoder 32-32-64-64 (4x4, stride 2) + dense 256 -> 10 Gaussian latents,
mirrored transposed-conv decoder, Bernoulli likelihood, beta = 4, Adam 1e-4,
batch 64, 300k steps (disentanglement_lib's `beta_vae` model, Table 1 and
Section 5 of Locatello et al. 2019). dSprites is rendered procedurally: no download.

  python -m experiments.run --config=experiments/beta_vae.py            # published setup
  python -m experiments.run --config=experiments/beta_vae.py:quick      # `make run`: minutes on a CPU
  python -m experiments.run --config=experiments/beta_vae.py --config.loss.beta=8.0
  python -m experiments.run --config=experiments/beta_vae.py:sweep      # beta x seed, one program

The other datasets of the study take one override, and the networks follow their
64x64x{1,3} shape (Bernoulli likelihood as in disentanglement_lib; --config.loss.likelihood=gaussian
for its l2 loss):

  python -m experiments.run --config=experiments/beta_vae.py:quick --config.data.name=color_dsprites
  ... --config.data.name=noisy_dsprites | textured_dsprites [--config.data.texture=scream.jpg]
  ... --config.data.name=shapes3d --config.data.local_dir=DIR   # 3dshapes.h5 (or a prepared TFDS build)
  ... --config.data.name=smallnorb|cars3d|mpi3d --config.data.local_dir=DIR   # vae_jax/data/factor_files.py
"""

from experiments import common


def get_config(arg: str | None = None):
    c = common.base_config()
    c.data.name = "dsprites"
    c.model.name = "vae"
    c.model.encoder = "conv"
    c.model.channels = (32, 32, 64, 64)
    c.model.dense = 256
    c.model.latent_dim = 10
    c.loss.likelihood = "bernoulli"
    c.loss.beta = 4.0
    c.optim.learning_rate = 1e-4
    c.train.batch_size = 64
    c.train.num_steps = 300_000
    c.train.log_every = 1000
    c.train.checkpoint_every = 10_000
    c.eval.every = 50_000
    c.eval.num_examples = 10_000
    c.eval.disentanglement = ("beta_vae_score", "factor_vae_score", "mig", "dci", "sap")
    # The beta column of Locatello et al. 2019 (dSprites), 3 seeds: 18 members, one program.
    sweep = "loss.beta=1,2,4,6,8,16 * seed=0,1,2"
    common.apply_preset(c, "beta_vae", arg, quick_steps=3000, sweep=sweep)
    preset, _ = common.parse_preset(arg)
    if preset == "quick":
        # Sized for minutes on a 2-core CPU without AVX-512: 3k steps with Adam 5e-4 so the run gets
        # further in its few steps, and the sample-based metrics only (the beta-VAE and FactorVAE
        # scores encode the 737k-image grid, or 1.92M sampled images on the stochastic
        # Color/Noisy/Textured variants).
        c.optim.learning_rate = 5e-4
        c.eval.disentanglement = ("mig", "sap", "dci")
    if preset == "smoke":
        c.eval.disentanglement = ()
        if c.sweep.spec:
            c.sweep.spec = "loss.beta=1,4 * seed=0,1"
    return c
