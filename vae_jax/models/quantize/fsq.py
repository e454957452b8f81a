"""Finite scalar quantization (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

Each of the d = len(levels) channels is bounded and rounded to one of L_i values:
  f(z_i) = tanh(z_i + s_i) * h_i - o_i,   h_i = (L_i - 1)(1 - 1e-3) / 2,
  o_i = 0.5 for even L_i (else 0),  s_i = tan(o_i / h_i)   (the offset centres even grids),
  z_hat_i = round(f(z_i)) / floor(L_i / 2)   with a straight-through gradient for round,
so codes lie on a fixed grid in [-1, 1]^d of prod(L_i) points: there is no codebook, no
codebook or commitment loss, and no code can die. A code's index is its mixed-radix number
sum_i (z_hat_i * floor(L_i/2) + floor(L_i/2)) * prod_{j<i} L_j. The bounding and rounding are
float32 whatever dtype the encoder computed in (`model.dtype`).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.models.quantize.estimators import straight_through
from vae_jax.models.quantize.vq import VQOutput, usage_statistics

# The paper's level sets for a target codebook size (Sec. 4.1 / Table 1 of Mentzer et al. 2023).
RECOMMENDED_LEVELS = {
    2**8: (8, 6, 5),
    2**10: (8, 5, 5, 5),
    2**12: (7, 5, 5, 5, 5),
    2**14: (8, 8, 8, 6, 5),
    2**16: (8, 8, 8, 5, 5, 5),
}


def recommended_levels(num_codes: int) -> tuple[int, ...]:
    """The paper's levels for a codebook of about num_codes (2^8 ... 2^16); KeyError otherwise."""
    return RECOMMENDED_LEVELS[num_codes]


def _half_width(levels) -> np.ndarray:
    return np.asarray(levels) // 2


def bound(z: jax.Array, levels) -> jax.Array:
    """tanh-bounded z [..., d] whose rounding takes exactly L_i integer values per channel."""
    levels = np.asarray(levels, np.float32)
    half = (levels - 1) * (1 - 1e-3) / 2
    offset = np.where(levels % 2 == 0, 0.5, 0.0).astype(np.float32)
    shift = np.tan(offset / half)
    return jnp.tanh(z + shift) * half - offset


def quantize(z: jax.Array, levels) -> jax.Array:
    """Codes [..., d] on the level grid in [-1, 1]; straight-through gradient of the rounding."""
    b = bound(z, levels)
    return straight_through(b, jnp.round(b)) / _half_width(levels)


def codes_to_indices(codes: jax.Array, levels) -> jax.Array:
    """Mixed-radix index [...] (int32) of grid codes [..., d]."""
    half = _half_width(levels)
    digits = jnp.round(codes * half + half).astype(jnp.int32)
    basis = np.cumprod([1, *levels[:-1]]).astype(np.int32)
    return jnp.sum(digits * basis, axis=-1).astype(jnp.int32)


def indices_to_codes(indices: jax.Array, levels) -> jax.Array:
    """Grid codes [..., d] of indices [...]: the inverse of codes_to_indices."""
    half = _half_width(levels)
    basis = np.cumprod([1, *levels[:-1]]).astype(np.int32)
    digits = (indices[..., None] // basis) % np.asarray(levels, np.int32)
    return (digits - half) / half.astype(np.float32)


class FSQ(nn.Module):
    """Finite scalar quantization of the last axis of z [B, ..., len(levels)]."""

    levels: tuple[int, ...] = (8, 5, 5, 5)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    @property
    def code_dim(self) -> int:
        return len(self.levels)

    def __call__(self, z: jax.Array, train: bool = False) -> VQOutput:
        del train  # no state, no noise
        if z.shape[-1] != len(self.levels):
            raise ValueError(
                f"FSQ with levels {self.levels} needs {len(self.levels)} channels, got {z.shape[-1]}"
            )
        codes = quantize(z.astype(jnp.float32), self.levels)  # [B, ..., d]
        indices = codes_to_indices(jax.lax.stop_gradient(codes), self.levels)
        counts = jnp.zeros((self.codebook_size,), jnp.float32).at[indices.ravel()].add(1.0)
        perplexity, usage = usage_statistics(counts)
        return VQOutput(codes, None, indices, perplexity, usage, None, counts=counts)

    def lookup(self, indices: jax.Array) -> jax.Array:
        """Grid codes [..., d] of indices [...]."""
        return indices_to_codes(indices, self.levels)
