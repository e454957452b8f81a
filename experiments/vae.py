"""MLP VAE on dynamically binarized MNIST: Burda et al. 2016 (the 1-stochastic-layer VAE).

Encoder and decoder 784-200-200 (the paper uses tanh; ReLU here), 50 Gaussian
latents, Bernoulli likelihood, Adam 1e-3, batch 20, dynamic binarization.
The paper trains for 3^8 passes over the data; the default here is 1M steps.

  python -m experiments.run --config=experiments/vae.py
  python -m experiments.run --config=experiments/vae.py:quick --config.data.name=fashion_mnist

`cpu_hour` sizes a run for one hour of a 2-core CPU, the final L_5000 on all 10,000 test
images included: the ELBO with Burda et al.'s whole schedule (stages i = 0..7 of 3^i * 250 steps
at 1e-3 * 10^(-i/7): 820,000 steps of 20 images, 273 passes, a twelfth of the paper's 3,280).
docs/results.md has its measured time and test log-likelihood:

  python -m experiments.run --config=experiments/vae.py:cpu_hour --config.data.local_dir=DIR
"""

from experiments import common


def get_config(arg: str | None = None):
    c = common.base_config()
    c.data.name = "mnist"
    c.data.binarize = "dynamic"
    c.model.name = "vae"
    c.model.encoder = "mlp"
    c.model.hidden = (200, 200)
    c.model.latent_dim = 50
    c.loss.likelihood = "bernoulli"
    c.optim.learning_rate = 1e-3
    c.train.batch_size = 20
    c.train.num_steps = 1_000_000
    c.train.log_every = 1000
    c.train.checkpoint_every = 10_000
    c.eval.every = 100_000
    c.eval.iwae_k = 5000  # Burda et al.'s test log-likelihood estimate
    common.apply_preset(c, "vae", arg, quick_steps=5000, extra_scales=("cpu_hour",))
    preset = common.parse_preset(arg, extra_scales=("cpu_hour",))[0]
    if preset == "quick":
        c.train.batch_size = 100
        c.eval.iwae_k = 1000
    elif preset == "cpu_hour":
        common.use_burda_schedule(c, stage0_steps=250, num_stages=8)
        c.eval.every = c.train.num_steps  # one evaluation, at the end
    return c
