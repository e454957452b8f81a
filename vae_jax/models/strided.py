"""A stride-2 transposed convolution rewritten as a stride-1 (sub-pixel) convolution.

XLA:CPU lowers a transposed convolution to an lhs-dilated convolution whose
forward and gradient are slow (the dSprites decoder's gradient was ~4x its
sub-pixel equivalent's). For a 4x4 kernel, stride 2 and 'SAME' padding,
`SubPixelConvTranspose` computes exactly `nn.ConvTranspose(features, (4, 4),
strides=(2, 2))`: each of the four output phases (row parity a, column parity b)
is a 3x3 stride-1 convolution of the input whose taps are the transposed
kernel's taps W[t_a(u), t_b(v)] (t_0 = (0, 2, -), t_1 = (-, 1, 3)); the phases
are interleaved by depth-to-space (Shi et al. 2016). It keeps the parameters of
the layer it replaces (`kernel` [4, 4, Cin, Cout], `bias` [Cout]), so
checkpoints and parameter counts are those of the plain layer;
tests/test_strided.py proves outputs and gradients equal.

The same trick for the encoder's strided convolutions (space-to-depth) measured
no faster on XLA:CPU, so the encoder keeps `nn.Conv`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# For output phase p in {0, 1} and 3x3 tap u in {0, 1, 2}: the 4x4 transposed-kernel tap, or -1.
_DECONV_TAPS = np.array([[0, 2, -1], [-1, 1, 3]])


def _gather_taps(kernel: jax.Array, taps_row: np.ndarray, taps_col: np.ndarray) -> jax.Array:
    """kernel[taps_row[u], taps_col[v]] for a 3x3 grid, zero where a tap is -1; [3, 3, Cin, Cout]."""
    rows = np.clip(taps_row, 0, 3)[:, None]
    cols = np.clip(taps_col, 0, 3)[None, :]
    mask = ((taps_row >= 0)[:, None] & (taps_col >= 0)[None, :]).astype(np.float32)
    return kernel[rows, cols] * mask[:, :, None, None]


def _conv3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


class SubPixelConvTranspose(nn.Module):
    """nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME') as a sub-pixel conv."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cin = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (4, 4, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        phases = [_gather_taps(kernel, _DECONV_TAPS[a], _DECONV_TAPS[b]) for a in (0, 1) for b in (0, 1)]
        y = _conv3(x, jnp.concatenate(phases, axis=-1))  # [B, H, W, 4 * Cout], phase-major
        b, h, w, _ = y.shape
        y = y.reshape(b, h, w, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
        return y.reshape(b, 2 * h, 2 * w, self.features) + bias
