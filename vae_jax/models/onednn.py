"""4x4 stride-2 convolutions and transposed convolutions through oneDNN (XLA:CPU FFI).

The third form of the layers in `vae_jax.models.strided` (`model.conv_impl='onednn'`,
what 'auto' picks on CPU once `python -m vae_jax.native` has built the kernels).
oneDNN provides the convolution, its input gradient ("backward data") and its
kernel gradient; the transposed convolution is the input gradient of the
convolution with the flipped, in/out-swapped kernel, so the same three kernels
give its value and both of its gradients. Values and gradients equal
`lax.conv_general_dilated` / `lax.conv_transpose` to float rounding
(tests/test_onednn.py). First-order gradients only (what training needs): the
VJPs are themselves FFI calls, which XLA cannot differentiate again; under `vmap`
(sweeps) the batch of models runs one after another.
"""

import jax
import jax.numpy as jnp

from vae_jax import native


def _call(name: str, shape, x: jax.Array, y: jax.Array) -> jax.Array:
    if x.dtype != jnp.float32 or y.dtype != jnp.float32:
        raise ValueError(
            f"model.conv_impl='onednn' computes in float32, got {x.dtype} and {y.dtype}: "
            "use float32 inputs and parameters, or set model.conv_impl='matmul'"
        )
    out = jax.ShapeDtypeStruct(shape, x.dtype)
    return jax.ffi.ffi_call(name, out, vmap_method="sequential")(x, y)


def _fwd(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """[B, H, W, C], [4, 4, C, O] -> [B, H/2, W/2, O]."""
    b, h, w, _ = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"a stride-2 4x4 layer needs even height and width, got {(h, w)}")
    return _call("vae_onednn_conv_fwd", (b, h // 2, w // 2, kernel.shape[3]), x, kernel)


def _bwd_data(dy: jax.Array, kernel: jax.Array) -> jax.Array:
    """The adjoint of _fwd in x: [B, h, w, O], [4, 4, C, O] -> [B, 2h, 2w, C]."""
    b, h, w, _ = dy.shape
    return _call("vae_onednn_conv_bwd_data", (b, 2 * h, 2 * w, kernel.shape[2]), dy, kernel)


def _bwd_weights(x: jax.Array, dy: jax.Array) -> jax.Array:
    """The adjoint of _fwd in the kernel: [B, H, W, C], [B, H/2, W/2, O] -> [4, 4, C, O]."""
    return _call("vae_onednn_conv_bwd_weights", (4, 4, x.shape[3], dy.shape[3]), x, dy)


def _flip_swap(kernel: jax.Array) -> jax.Array:
    return kernel[::-1, ::-1].transpose(0, 1, 3, 2)


@jax.custom_vjp
def conv_4x4_s2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)))`, NHWC/HWIO, by oneDNN."""
    return _fwd(x, kernel)


def _conv_fwd(x, kernel):
    return _fwd(x, kernel), (x, kernel)


def _conv_bwd(res, g):
    x, kernel = res
    return _bwd_data(g, kernel), _bwd_weights(x, g)


conv_4x4_s2.defvjp(_conv_fwd, _conv_bwd)


@jax.custom_vjp
def conv_transpose_4x4_s2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (2, 2), 'SAME')`, NHWC/HWIO, by oneDNN."""
    return _bwd_data(x, _flip_swap(kernel))


def _conv_transpose_fwd(x, kernel):
    flipped = _flip_swap(kernel)
    return _bwd_data(x, flipped), (x, flipped)


def _conv_transpose_bwd(res, g):
    x, flipped = res
    return _fwd(g, flipped), _flip_swap(_bwd_weights(g, x))


conv_transpose_4x4_s2.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def available() -> bool:
    """Whether the kernels are built and registered (CPU only)."""
    return native.load()
