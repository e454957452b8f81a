"""MLP autoencoder on Fashion-MNIST, the lecture's example (Gaussian likelihood = squared error).

python -m experiments.run --config=experiments/ae.py
python -m experiments.run --config=experiments/ae.py:quick --config.model.latent_dim=2
"""

from experiments import common


def get_config(arg: str | None = None):
    c = common.base_config()
    c.data.name = "fashion_mnist"
    c.model.name = "ae"
    c.model.encoder = "mlp"
    c.model.hidden = (512, 256)
    c.model.latent_dim = 32
    c.loss.likelihood = "gaussian"  # fixed unit scale: the loss is half the squared error + const
    c.optim.learning_rate = 1e-3
    c.train.batch_size = 128
    c.train.num_steps = 50_000
    c.eval.every = 10_000
    common.apply_preset(c, "ae", arg, quick_steps=3000)
    return c
