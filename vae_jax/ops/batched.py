"""4x4 stride-2 layers as one patch matrix and one product each, a form for vmapped sweeps.

A vmapped member's layer has its own kernel. JAX batches a convolution whose kernel
is batched into a grouped convolution (a feature group per member; its kernel gradient
a `batch_group_count` convolution), which accelerators run far below their dense
rate. Written as products instead, the member axis becomes a batch dimension of
`dot_general`: one batched matrix product per layer, the shape accelerators are built
for. `vae_jax.ops.matmul` vmaps the same way; its products also run over the padded
border (a third more FLOPs in the dSprites networks) and read compact operands. The
products here do the convolution's own multiply-adds (padding taps included), and
build a patch matrix four times the size of the input to do so:

* Convolution: `patches(x)` [B, H/2, W/2, 16C] holds each output pixel's 4x4 input
  window; the layer is `patches(x) @ K` with the kernel as a [16C, O] matrix. Its
  gradients are `g @ K^T` folded back onto the input (`patches_adjoint`, adds only)
  and `patches(x)^T @ g`.
* Transposed convolution: the adjoint in x of the convolution with the flipped,
  in/out-swapped kernel, so `patches_adjoint(x @ K'^T)`; its gradients are again one
  patch matrix and two products.

Each VJP keeps the layer's input, not its patch matrix (four times larger), and
rebuilds the patches from it: a vmapped sweep holds every member's activations at once.
Nothing here fixes a dtype: the products run in the dtype of their operands.
"""

import jax
import jax.numpy as jnp

from vae_jax.ops.matmul import _check_even, _d2s_crop, _mm, _mm_t, _s2d_pad, conv_same, flip_swap

__all__ = ["conv_4x4_s2", "conv_same", "conv_transpose_4x4_s2", "patches", "patches_adjoint"]

# Layout. With xs = _s2d_pad(x) [B, H/2+1, W/2+1, (r, s, c)] (2x2 blocks of the padded input
# folded into channels), tap (2a + r, 2b + s) of output pixel (k, l) is xs[k + a, l + b, (r, s, c)];
# a patch row lists the taps in the order (a, b, r, s, c).
_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (a, b)


def _gather_blocks(xs: jax.Array) -> jax.Array:
    """[B, h+1, w+1, D] -> [B, h, w, (a, b, D)]: each pixel's 2x2 block of neighbours."""
    _, hs, ws, _ = xs.shape
    return jnp.concatenate([xs[:, a : a + hs - 1, b : b + ws - 1] for a, b in _OFFSETS], axis=-1)


def _scatter_blocks(p: jax.Array) -> jax.Array:
    """The adjoint of _gather_blocks: [B, h, w, (a, b, D)] -> [B, h+1, w+1, D]."""
    blocks = p.reshape(*p.shape[:-1], 4, p.shape[-1] // 4)
    pads = [((0, 0), (a, 1 - a), (b, 1 - b), (0, 0)) for a, b in _OFFSETS]
    return sum(jnp.pad(blocks[..., i, :], pad) for i, pad in enumerate(pads))


def patches(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H/2, W/2, 16C]: the 4x4, stride-2, 'SAME' window of every output pixel."""
    _check_even(x)
    return _gather_blocks(_s2d_pad(x))


def patches_adjoint(p: jax.Array) -> jax.Array:
    """The adjoint of `patches`: [B, h, w, 16C] -> [B, 2h, 2w, C], each window added back in place."""
    return _d2s_crop(_scatter_blocks(p))


def _patch_kernel(kernel: jax.Array) -> jax.Array:
    """[4, 4, C, O] -> [16C, O] with rows in the patches' order (a, b, r, s, c)."""
    _, _, c, o = kernel.shape
    return kernel.reshape(2, 2, 2, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(16 * c, o)


def _unpatch_kernel(k: jax.Array, c: int, o: int) -> jax.Array:
    """The inverse of _patch_kernel: [16C, O] -> [4, 4, C, O]."""
    return k.reshape(2, 2, 2, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(4, 4, c, o)


@jax.custom_vjp
def conv_4x4_s2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)))`, NHWC/HWIO, as one product."""
    return _mm(patches(x), _patch_kernel(kernel))


def _conv_fwd(x, kernel):
    return conv_4x4_s2(x, kernel), (x, kernel)


def _conv_bwd(res, g):
    x, kernel = res
    c, o = kernel.shape[2:]
    k = _patch_kernel(kernel)
    dx = patches_adjoint(_mm(g, k.T))
    dk = _mm_t(patches(x), g)  # [16C, O]
    return dx, _unpatch_kernel(dk, c, o)


conv_4x4_s2.defvjp(_conv_fwd, _conv_bwd)


@jax.custom_vjp
def conv_transpose_4x4_s2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (2, 2), 'SAME')`, NHWC/HWIO, as one product."""
    k = _patch_kernel(flip_swap(kernel))  # [16O, C]: the adjoint convolution's patch kernel
    return patches_adjoint(_mm(x, k.T))


def _conv_transpose_fwd(x, kernel):
    return conv_transpose_4x4_s2(x, kernel), (x, kernel)


def _conv_transpose_bwd(res, g):
    x, kernel = res
    c, o = kernel.shape[2:]
    k = _patch_kernel(flip_swap(kernel))
    pg = patches(g)  # [B, h, w, 16O], shared by both gradients
    dx = _mm(pg, k)
    dk = _mm_t(pg, x)  # [16O, C]
    return dx, flip_swap(_unpatch_kernel(dk, o, c))


conv_transpose_4x4_s2.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)
