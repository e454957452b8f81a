"""4x4 stride-2 convolutions and transposed convolutions through oneDNN (XLA:CPU FFI).

oneDNN provides the convolution, its input gradient ("backward data") and its
kernel gradient (`vae_jax/ops/native/onednn_conv.cc`); the transposed convolution
is the input gradient of the convolution with the flipped, in/out-swapped kernel,
so the same three kernels give its value and both of its gradients. First-order
gradients only (what training needs): the VJPs are themselves FFI calls, which
XLA cannot differentiate again; under `vmap` (sweeps) the members run one after
another.

oneDNN picks its kernels by the CPU's instruction set at run time, so a kernel
that is right on one machine is untested on the next. `verified(kind, x_shape,
kernel_shape)` therefore runs each layer shape once per process, forward and
both gradients on a batch of 2, against the matrix-product form before the layer
first uses the kernels; a failure or mismatch disables the kernels for the rest
of the process with one warning (the 'auto' path then uses the matrix-product
form), or raises `OneDNNCheckError` where `conv_impl='onednn'` was asked for.
"""

import concurrent.futures
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.errors import ConfigError, UserError
from vae_jax.ops import matmul, native


class OneDNNCheckError(UserError, ValueError):
    """The oneDNN kernels failed their self-check on this machine (the config asked for them)."""


def _call(name: str, shape, x: jax.Array, y: jax.Array) -> jax.Array:
    if x.dtype != jnp.float32 or y.dtype != jnp.float32:
        raise ConfigError(
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
    return _bwd_data(x, matmul.flip_swap(kernel))


def _conv_transpose_fwd(x, kernel):
    flipped = matmul.flip_swap(kernel)
    return _bwd_data(x, flipped), (x, flipped)


def _conv_transpose_bwd(res, g):
    x, flipped = res
    return _fwd(g, flipped), matmul.flip_swap(_bwd_weights(g, x))


conv_transpose_4x4_s2.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)

FORMS = {"conv_4x4_s2": conv_4x4_s2, "conv_transpose_4x4_s2": conv_transpose_4x4_s2}


def built() -> bool:
    """Whether the kernels are built and registered (CPU only)."""
    return native.load()


def available() -> bool:
    """Whether the kernels are built and have not failed a self-check in this process."""
    return built() and _failure is None


# (kind, per-example input shape, kernel shape) -> None once checked; the first failure's reason.
_checked: set[tuple] = set()
_failure: str | None = None
CHECK_BATCH = 2


def compare_with_matmul(kind: str, x_shape: tuple, kernel_shape: tuple) -> str | None:
    """Runs one layer shape in both forms; the reason for a mismatch, or None when they agree."""
    # Inputs from numpy and one program for both forms: a check costs one compile per layer shape.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((CHECK_BATCH, *x_shape), np.float32)
    kernel = rng.standard_normal(kernel_shape, np.float32)

    def value_and_grads(form):
        y, vjp = jax.vjp(form, x, kernel)
        cotangent = jax.random.normal(jax.random.key(1), y.shape)
        return (y, *vjp(cotangent))

    try:
        got, want = jax.jit(lambda: (value_and_grads(FORMS[kind]), value_and_grads(getattr(matmul, kind))))()
        got = [np.asarray(a) for a in got]
    except Exception as e:  # noqa: BLE001 - any failure of the kernels is the reason reported
        return f"{type(e).__name__}: {e}"
    for name, a, b in zip(("value", "input gradient", "kernel gradient"), got, want, strict=True):
        b = np.asarray(b)
        if not np.all(np.isfinite(a)) or np.max(np.abs(a - b)) > 1e-3 * (1 + np.max(np.abs(b))):
            return f"the {name} differs from the matrix-product form (max error {np.max(np.abs(a - b)):.3g})"
    return None


def verified(kind: str, x_shape: tuple, kernel_shape: tuple, required: bool = False) -> bool:
    """Whether the kernels compute layer `kind` for inputs [B, *x_shape] right on this machine.

    The first call for each shape runs the self-check (in a thread of its own, so it can be
    called while a model is being traced). With `required` a failure raises OneDNNCheckError;
    otherwise it warns once and disables the kernels for the process.
    """
    global _failure
    key = (kind, tuple(x_shape), tuple(kernel_shape))
    if _failure is None and key not in _checked:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            reason = pool.submit(compare_with_matmul, *key).result()
        if reason is None:
            _checked.add(key)
        else:
            _failure = f"{kind} on inputs {x_shape} with kernel {kernel_shape}: {reason}"
            if not required:
                warnings.warn(
                    f"the oneDNN convolution kernels failed their self-check ({_failure}); "
                    "continuing with model.conv_impl='matmul' (the same function, slower)",
                    RuntimeWarning,
                    stacklevel=2,
                )
    if _failure is not None and required:
        raise OneDNNCheckError(
            f"model.conv_impl='onednn': the kernels failed their self-check on this machine ({_failure}); "
            "set model.conv_impl='matmul' or 'auto'"
        )
    return _failure is None
