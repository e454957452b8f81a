"""Convolutional autoencoder on Fashion-MNIST: conv 32-64 (4x4, stride 2) + dense, deconv decoder.

python -m experiments.run --config=experiments/conv_ae.py
python -m experiments.run --config=experiments/conv_ae.py:quick
"""

from experiments import ae, common


def get_config(arg: str | None = None):
    c = ae.get_config()
    c.model.encoder = "conv"
    c.model.channels = (32, 64)
    c.model.dense = 256
    common.apply_preset(c, "conv_ae", arg, quick_steps=2000)
    return c
