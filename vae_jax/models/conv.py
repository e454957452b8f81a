"""Convolutional encoder and transposed-convolution ("deconv") decoder.

With `channels=(32, 32, 64, 64)`, 4x4 kernels, stride 2 and a 256-unit dense layer
these are the dSprites networks of disentanglement_lib (Locatello et al. 2019,
Table 1); with `channels=(32, 64)` they fit 28x28 images (28 -> 14 -> 7).
`spatial=True` keeps the latent as a grid [B, h, w, D] (VQ-VAE) instead of a vector.
With 4x4 kernels, `impl` (`model.conv_impl`) picks the form the stride-2 layers
and the spatial latent's 1x1 and 3x3 layers are computed in (`vae_jax.ops`); the
function and the parameters are the same in every form. `dtype` (`model.dtype`) is the
computation's dtype, flax's convention: parameters stay float32, every layer computes
in `dtype` and so does the output.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Dtype

from vae_jax.errors import ConfigError
from vae_jax.models.layers import ConvSame, StridedConv, StridedConvTranspose


def _downsampled_size(size: int, num_layers: int) -> int:
    factor = 2**num_layers
    if size % factor:
        raise ConfigError(
            f"image size {size} is not divisible by 2^{num_layers} = {factor}: "
            f"use a conv architecture with fewer layers (model.channels) or resize the data"
        )
    return size // factor


class ConvEncoder(nn.Module):
    """Strided conv stack; [B, H, W, C] -> [B, out_dim] (or [B, h, w, out_dim] if spatial)."""

    out_dim: int
    channels: Sequence[int] = (32, 32, 64, 64)
    kernel: int = 4
    dense: int = 256
    spatial: bool = False
    impl: str = "auto"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for size in x.shape[1:3]:
            _downsampled_size(size, len(self.channels))
        h = x
        for i, c in enumerate(self.channels):
            name = f"Conv_{i}"  # the same parameter tree for every impl
            if self.kernel == 4:
                h = StridedConv(c, self.impl, self.dtype, name=name)(h)
            else:
                k = (self.kernel, self.kernel)
                h = nn.Conv(c, k, strides=2, padding="SAME", dtype=self.dtype, name=name)(h)
            h = nn.relu(h)
        if self.spatial:
            name = f"Conv_{len(self.channels)}"
            return ConvSame(self.out_dim, (1, 1), self.impl, self.dtype, name=name)(h)  # [B, h, w, D]
        h = h.reshape(h.shape[0], -1)
        if self.dense:
            h = nn.relu(nn.Dense(self.dense, dtype=self.dtype)(h))
        return nn.Dense(self.out_dim, dtype=self.dtype)(h)


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder: dense -> reshape -> stride-2 transposed convs -> [B, H, W, C]."""

    output_shape: Sequence[int]
    channels: Sequence[int] = (32, 32, 64, 64)
    kernel: int = 4
    dense: int = 256
    spatial: bool = False
    impl: str = "auto"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, out_channels = self.output_shape
        n = len(self.channels)
        h0, w0 = _downsampled_size(height, n), _downsampled_size(width, n)
        if self.spatial:  # z: [B, h0, w0, D]
            h = nn.relu(ConvSame(self.channels[-1], (3, 3), self.impl, self.dtype, name="Conv_0")(z))
        else:  # z: [B, d]
            h = z
            if self.dense:
                h = nn.relu(nn.Dense(self.dense, dtype=self.dtype)(h))
            h = nn.relu(nn.Dense(h0 * w0 * self.channels[-1], dtype=self.dtype)(h))
            h = h.reshape(z.shape[0], h0, w0, self.channels[-1])
        deconv_channels = [*reversed(self.channels[:-1]), out_channels]
        for i, c in enumerate(deconv_channels):
            name = f"ConvTranspose_{i}"  # the same parameter tree for every impl
            if self.kernel == 4:
                h = StridedConvTranspose(c, self.impl, self.dtype, name=name)(h)
            else:
                k = (self.kernel, self.kernel)
                h = nn.ConvTranspose(c, k, strides=(2, 2), padding="SAME", dtype=self.dtype, name=name)(h)
            if i < len(deconv_channels) - 1:
                h = nn.relu(h)
        return h


def num_params(params) -> int:
    """Number of scalar parameters in a pytree."""
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
