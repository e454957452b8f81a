"""FactorVAE's discriminator: an MLP telling codes z ~ q(z) from codes of prod_j q(z_j)."""

from collections.abc import Sequence

import flax.linen as nn
import jax


class Discriminator(nn.Module):
    """Leaky-ReLU MLP from codes [B, d] to two logits [B, 2] (0: q(z), 1: permuted).

    disentanglement_lib's `fc_discriminator` (Kim & Mnih 2018, App.): 6 layers of 1000 units,
    leaky ReLU with TensorFlow's default slope 0.2.
    """

    hidden: Sequence[int] = (1000,) * 6
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = z.reshape(z.shape[0], -1)
        for width in self.hidden:
            h = nn.leaky_relu(nn.Dense(width)(h), self.negative_slope)
        return nn.Dense(2)(h)
