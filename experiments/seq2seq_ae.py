"""Recurrent seq2seq autoencoder: an LSTM encoder reads the sequence, its final state gives the
latent, an LSTM decoder unrolls the sequence back. Default data: procedural multi-frequency
sines ([64, 1], offline); images read row by row are one override away, and the VAE one more.

  python -m experiments.run --config=experiments/seq2seq_ae.py:quick
  python -m experiments.run --config=experiments/seq2seq_ae.py:quick --config.model.name=vae
  python -m experiments.run --config=experiments/seq2seq_ae.py:quick --config.data.name=fashion_mnist \
      --config.loss.likelihood=bernoulli    # 28 rows of 28 pixels
"""

from experiments import common


def get_config(arg: str | None = None):
    c = common.base_config()
    c.data.name = "sines"
    c.model.name = "ae"
    c.model.encoder = "recurrent"
    c.model.rnn_hidden = 128
    c.model.cell = "lstm"
    c.model.latent_dim = 16
    c.loss.likelihood = "gaussian"
    c.loss.log_scale = -2.0  # sigma ~ 0.14 for signals of amplitude ~1
    c.optim.learning_rate = 1e-3
    c.train.batch_size = 64
    c.train.num_steps = 20_000
    c.eval.every = 5000
    c.eval.num_examples = 1000
    common.apply_preset(c, "seq2seq_ae", arg, quick_steps=2000)
    return c
