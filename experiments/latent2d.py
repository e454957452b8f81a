"""2-D latent space on Fashion-MNIST, AE and VAE side by side (the lecture's picture).

Writes images/latent_2d_<step>.png (test codes coloured by class) and
images/manifold_<step>.png (decoded 15 x 15 grid over [-2.5, 2.5]^2). The AE's
codes spread over an arbitrary, gappy region (decoding the grid gives garbage
off the data); the VAE's KL term packs them into the prior's ball, so every grid
point decodes to a plausible garment.

  python -m experiments.run --config=experiments/latent2d.py:quick             # VAE
  python -m experiments.run --config=experiments/latent2d.py:quick --config.model.name=ae
  python -m experiments.run --config=experiments/latent2d.py:ae,quick          # same, as a preset
  python -m experiments.run --config=experiments/latent2d.py:vae,quick
"""

from experiments import common


def get_config(arg: str | None = None):
    words = [w for w in (arg or "").split(",") if w]
    model = "ae" if "ae" in words else "vae"
    rest = ",".join(w for w in words if w not in ("ae", "vae")) or None
    c = common.base_config()
    c.data.name = "fashion_mnist"
    c.model.name = model
    c.model.encoder = "mlp"
    c.model.hidden = (512, 256)
    c.model.latent_dim = 2
    c.loss.likelihood = "bernoulli"  # grey levels as Bernoulli means, as in the lecture
    c.optim.learning_rate = 1e-3
    c.train.batch_size = 128
    c.train.num_steps = 30_000
    c.eval.every = 10_000
    common.apply_preset(c, f"latent2d_{model}", rest, quick_steps=4000)
    return c
