"""Convolution layers whose form (XLA, matrix products, oneDNN) is chosen by `impl`.

Each keeps the parameters of the flax layer it stands for (`kernel` [kh, kw, Cin, Cout],
`bias` [Cout]), so checkpoints and parameter counts do not depend on the form;
`vae_jax.ops.convolution` supplies the computation. As in flax's own layers, `dtype` is
the computation's dtype: parameters are stored in float32 and cast to it with the input.
The oneDNN kernels compute in float32 only, so a layer in another dtype never runs them:
'auto' takes the matrix-product form on the CPU there (`vae_jax.ops.convolution`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from vae_jax import ops


def _apply(kind: str, impl: str, x: jax.Array, kernel: jax.Array, bias: jax.Array, dtype: Dtype):
    """bias + the layer `kind` in form `impl`, computed in `dtype`."""
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=dtype)
    return ops.convolution(kind, impl)(x, kernel) + bias


class _Stride2(nn.Module):
    """A 4x4 stride-2 layer: [B, H, W, C] -> [B, H/2, W/2, features] (or x2 for the transpose)."""

    features: int
    impl: str = "auto"
    dtype: Dtype = jnp.float32
    kind = "conv_4x4_s2"  # the `vae_jax.ops` layer kind (a class attribute, not a field)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (4, 4, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return _apply(self.kind, self.impl, x, kernel, bias, self.dtype)


class StridedConv(_Stride2):
    """`nn.Conv(features, (4, 4), strides=2, padding='SAME')` (even sizes), same parameters."""


class StridedConvTranspose(_Stride2):
    """`nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')`, same parameters."""

    kind = "conv_transpose_4x4_s2"


class ConvSame(nn.Module):
    """`nn.Conv(features, kernel_size)` (stride 1, 'SAME', odd kernel), same parameters."""

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    impl: str = "auto"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, H, W, C] -> [B, H, W, features]
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return _apply("conv_same", self.impl, x, kernel, bias, self.dtype)
