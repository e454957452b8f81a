"""Recurrent (LSTM / GRU) sequence encoder and decoder for inputs [B, T, F].

`dtype` is the computation's dtype (the cells' and dense layers' products); parameters stay float32.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from vae_jax.errors import ConfigError

_CELLS = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}


def _cell(kind: str, features: int, dtype: Dtype) -> nn.RNNCellBase:
    if kind not in _CELLS:
        raise ConfigError(f"model.cell={kind!r} is not a known recurrent cell; valid: {sorted(_CELLS)}")
    return _CELLS[kind](features, dtype=dtype)


class RecurrentEncoder(nn.Module):
    """Reads a sequence [B, T, F] (images are read row by row) and maps the final state to [B, out_dim]."""

    out_dim: int
    hidden: int = 256
    cell: str = "lstm"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim == 4:  # [B, H, W, C] image: one row per time step.
            x = x.reshape(x.shape[0], x.shape[1], -1)
        carry, _ = nn.RNN(_cell(self.cell, self.hidden, self.dtype), return_carry=True)(x)
        h = carry[1] if isinstance(carry, tuple) else carry  # LSTM carry is (c, h).
        return nn.Dense(self.out_dim, dtype=self.dtype)(h)


class RecurrentDecoder(nn.Module):
    """Unrolls T steps from a latent [B, d]: the latent sets the initial state and feeds each step."""

    output_shape: Sequence[int]
    hidden: int = 256
    cell: str = "lstm"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        z = z.reshape(z.shape[0], -1)
        steps = self.output_shape[0]
        features = 1
        for size in self.output_shape[1:]:
            features *= size
        cell = _cell(self.cell, self.hidden, self.dtype)
        h0 = jnp.tanh(nn.Dense(self.hidden, dtype=self.dtype)(z))
        carry = (jnp.zeros_like(h0), h0) if self.cell == "lstm" else h0
        inputs = jnp.broadcast_to(z[:, None, :], (z.shape[0], steps, z.shape[-1]))
        h = nn.RNN(cell)(inputs, initial_carry=carry)  # [B, T, hidden]
        out = nn.Dense(features, dtype=self.dtype)(h)
        return out.reshape(z.shape[0], *self.output_shape)
