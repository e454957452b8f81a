"""Anomaly detection on Fashion-MNIST: train a VAE without one class, score the test set by
-ELBO and -L_k, report the AUROC of detecting the held-out class.

`:sweep` holds out each of the 10 classes in turn (10 programs, one per class,
run one after another) and sweep_results.csv gets one AUROC row per class.

  python -m experiments.run --config=experiments/anomaly.py:quick,sweep
  python -m experiments.run --config=experiments/anomaly.py --config.data.held_out_class=5
"""

from experiments import common


def get_config(arg: str | None = None):
    c = common.base_config()
    c.data.name = "fashion_mnist"
    c.data.held_out_class = 0
    c.model.name = "vae"
    c.model.encoder = "mlp"
    c.model.hidden = (512, 256)
    c.model.latent_dim = 16
    c.loss.likelihood = "bernoulli"
    c.optim.learning_rate = 1e-3
    c.train.batch_size = 128
    c.train.num_steps = 20_000
    c.eval.every = 10_000
    c.eval.iwae_k = 1000
    sweep = "data.held_out_class=0,1,2,3,4,5,6,7,8,9"
    common.apply_preset(c, "anomaly", arg, quick_steps=2000, sweep=sweep)
    if common.parse_preset(arg)[0] == "quick":
        c.eval.iwae_k = 100
        c.eval.num_examples = 0  # all 10,000 test images: AUROC needs every class
        c.eval.iwae_num_examples = 0
    return c
