"""Multilayer-perceptron encoder and decoder; `dtype` is the computation's (parameters stay float32)."""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Dtype

ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh}


class MLPEncoder(nn.Module):
    """Flattens x [B, ...] and maps it through hidden layers to `out_dim` features [B, out_dim]."""

    out_dim: int
    hidden: Sequence[int] = (512, 256)
    activation: str = "relu"  # a key of ACTIVATIONS; Burda et al. 2016 use tanh
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = ACTIVATIONS[self.activation](nn.Dense(width, dtype=self.dtype)(h))
        return nn.Dense(self.out_dim, dtype=self.dtype)(h)


class MLPDecoder(nn.Module):
    """Maps latents [B, ...] through hidden layers to an output of `output_shape` per example."""

    output_shape: Sequence[int]
    hidden: Sequence[int] = (256, 512)
    activation: str = "relu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = z.reshape(z.shape[0], -1)
        for width in self.hidden:
            h = ACTIVATIONS[self.activation](nn.Dense(width, dtype=self.dtype)(h))
        out = nn.Dense(int(np.prod(self.output_shape)), dtype=self.dtype)(h)
        return jnp.reshape(out, (z.shape[0], *self.output_shape))
