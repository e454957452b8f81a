"""A small autoregressive prior over VQ-VAE code grids: a gated-free PixelCNN (van den Oord et al. 2016).

p(c) = prod_{i,j} p(c_ij | codes above, and left of (i, j)), enforced by masked
convolutions: mask 'A' (first layer) hides the centre, mask 'B' shows it.

Codes of any quantizer: FSQ gives one index per position (its mixed-radix index on the level
grid, `codebook_size` = prod(levels) values). Residual VQ gives N indices per position
[B, h, w, N]; `levels_to_grid` interleaves them along the width, [B, h, w * N], so the raster
order visits position (i, j) level by level, coarse to fine, and the same PixelCNN models
p(c) = prod_{i,j,n} p(c_ijn | earlier positions, and earlier levels at (i, j)) exactly.

`dtype` (the prior config's `model.dtype`) is the layers' computation dtype; parameters stay
float32 and the logits are returned in float32, so the cross-entropy is a float32 sum.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Dtype


def causal_mask(kernel: int, include_centre: bool) -> np.ndarray:
    """[k, k] mask: rows above the centre, and the centre row left of (and maybe at) the centre."""
    mask = np.zeros((kernel, kernel), np.float32)
    c = kernel // 2
    mask[:c, :] = 1.0
    mask[c, :c] = 1.0
    if include_centre:
        mask[c, c] = 1.0
    return mask


class MaskedConv(nn.Module):
    features: int
    kernel: int
    include_centre: bool
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.param(
            "kernel", nn.initializers.lecun_normal(), (self.kernel, self.kernel, x.shape[-1], self.features)
        )
        b = self.param("bias", nn.initializers.zeros, (self.features,))
        k = k * jnp.asarray(causal_mask(self.kernel, self.include_centre))[:, :, None, None]
        x, k, b = nn.dtypes.promote_dtype(x, k, b, dtype=self.dtype)
        y = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + b


class PixelCNNPrior(nn.Module):
    """codes [B, h, w] (int) -> logits [B, h, w, num_codes] of each code given the earlier ones."""

    num_codes: int
    features: int = 128
    layers: int = 5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, codes: jax.Array) -> jax.Array:
        h = nn.Embed(self.num_codes, self.features, dtype=self.dtype)(codes)
        h = nn.relu(MaskedConv(self.features, 5, include_centre=False, dtype=self.dtype)(h))
        for _ in range(self.layers):
            h = h + nn.relu(MaskedConv(self.features, 3, include_centre=True, dtype=self.dtype)(h))
        logits = nn.Conv(self.num_codes, (1, 1), dtype=self.dtype)(nn.relu(h))
        return logits.astype(jnp.float32)


def levels_to_grid(codes: np.ndarray) -> np.ndarray:
    """[B, h, w, N] residual-VQ codes -> [B, h, w * N] (levels interleaved along the width)."""
    return codes.reshape(codes.shape[0], codes.shape[1], -1)


def grid_to_levels(grid: jax.Array, num_levels: int) -> jax.Array:
    """The inverse of levels_to_grid: [B, h, w * N] -> [B, h, w, N]."""
    return grid.reshape(grid.shape[0], grid.shape[1], -1, num_levels)


def sample_codes(prior: PixelCNNPrior, params, rng: jax.Array, num: int, grid: tuple[int, int]) -> jax.Array:
    """Ancestral sampling of num code grids, one position at a time (h * w forward passes)."""
    h, w = grid

    def body(i, carry):
        codes, rng = carry
        rng, key = jax.random.split(rng)
        logits = prior.apply(params, codes)[:, i // w, i % w]  # [num, K]
        return codes.at[:, i // w, i % w].set(jax.random.categorical(key, logits)), rng

    codes = jnp.zeros((num, h, w), jnp.int32)
    return jax.lax.fori_loop(0, h * w, body, (codes, rng))[0]
