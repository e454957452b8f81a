"""The forms a convolution layer can be computed in, behind one lookup by `model.conv_impl`.

The models' stride-2 4x4 layers (and the VQ-VAE's stride-1 1x1 / 3x3 layers) are
the same function in every form; only the speed differs by machine:

* 'xla': XLA's own convolutions (cuDNN on GPU, the TPU's convolution unit).
* 'matmul': the matrix-product forms of `vae_jax.ops.matmul`, several times
  faster than XLA:CPU's generic convolution.
* 'onednn': oneDNN's convolutions called from XLA:CPU (`vae_jax.ops.onednn`,
  built by `python -m vae_jax.ops.native`), each layer shape self-checked against
  'matmul' before its first use. Only the stride-2 layers; the stride-1 ones use
  'matmul'.
* 'batched': one patch matrix and one product per layer (`vae_jax.ops.batched`): the
  convolution's own FLOPs, four times its input in patches. Vmapped over a sweep's members
  both product forms are batched matrix products, where 'xla' becomes a grouped convolution.
* 'auto': on CPU 'onednn' where its kernels are built and pass their self-check, else
  'matmul'. On GPU/TPU 'xla' in one model's step and VMAPPED_FORM inside a vmapped sweep
  step (`vmapped_sweep`): there XLA's convolutions would become grouped ones
  (docs/performance.md, "Vmapped sweeps", says why this form).

`convolution(kind, impl)` returns the function `(x, kernel) -> y` (NHWC / HWIO)
for one layer kind; `allocator` holds the opt-in malloc settings for CPU steps.
"""

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import jax
from jax import lax

from vae_jax.errors import ConfigError
from vae_jax.ops import batched, matmul, onednn

IMPLS = ("auto", "onednn", "matmul", "batched", "xla")
KINDS = ("conv_4x4_s2", "conv_transpose_4x4_s2", "conv_same")
_NHWC = ("NHWC", "HWIO", "NHWC")
_VMAPPED = contextvars.ContextVar("vae_jax_vmapped_sweep", default=False)
# What 'auto' gives the layers of a vmapped sweep off the CPU. Both product forms vmap into batched
# products; 'matmul' moves about half the bytes of 'batched' for a third more FLOPs (padding taps).
VMAPPED_FORM = "matmul"


@contextlib.contextmanager
def vmapped_sweep() -> Iterator[None]:
    """Layers traced inside resolve 'auto' as members of a vmapped sweep (`resolve_impl`).

    The sweep step enters it around the vmapped step while JAX traces it, so the models
    themselves stay the same objects (and parameters) as in a single run.
    """
    token = _VMAPPED.set(True)
    try:
        yield
    finally:
        _VMAPPED.reset(token)


def resolve_impl(impl: str, platform: str | None = None, vmapped: bool | None = None) -> str:
    """The form `impl` stands for on `platform` (default: JAX's default backend).

    'auto' -> on the CPU 'onednn' when the kernels are built (and have not failed a
    self-check), else 'matmul' (vmapped, the oneDNN calls run member after member, which a
    CPU does fastest); off it VMAPPED_FORM in a vmapped sweep (`vmapped`; default: whether
    this is traced inside `vmapped_sweep`), else 'xla'. Asking for 'onednn' where it cannot
    run raises ConfigError saying what to do instead.
    """
    if impl not in IMPLS:
        raise ConfigError(f"model.conv_impl={impl!r} is not known; valid: {list(IMPLS)}")
    cpu = (platform or jax.default_backend()) == "cpu"
    if impl == "auto":
        if cpu:
            return "onednn" if onednn.available() else "matmul"
        return VMAPPED_FORM if (_VMAPPED.get() if vmapped is None else vmapped) else "xla"
    if impl == "onednn" and not (cpu and onednn.built()):
        raise ConfigError(
            "model.conv_impl='onednn' needs the CPU backend and the oneDNN kernels: build them with "
            "`python -m vae_jax.ops.native` (needs g++ and the onednn-devel-cpu-gomp wheel: "
            "pip install -e '.[native]'), or set model.conv_impl='matmul'"
        )
    return impl


def _xla(kind: str) -> Callable:
    if kind == "conv_4x4_s2":
        return lambda x, k: lax.conv_general_dilated(x, k, (2, 2), "SAME", dimension_numbers=_NHWC)
    if kind == "conv_transpose_4x4_s2":
        return lambda x, k: lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=_NHWC)
    return lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=_NHWC)


def _checked_onednn(kind: str, required: bool) -> Callable:
    """The oneDNN form, self-checked for each new shape; the matrix-product form if the check fails
    and for inputs in another dtype than float32 (the kernels' only one, e.g. bfloat16 layers)."""

    def apply(x: jax.Array, kernel: jax.Array) -> jax.Array:
        in_float32 = x.dtype == jax.numpy.float32
        if in_float32 and onednn.verified(kind, x.shape[1:], kernel.shape, required=required):
            return onednn.FORMS[kind](x, kernel)
        return getattr(matmul, kind)(x, kernel)

    return apply


def convolution(kind: str, impl: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The function (x, kernel) -> y computing layer `kind` (one of KINDS) in form `impl`."""
    if kind not in KINDS:
        raise ValueError(f"unknown convolution kind {kind!r}; valid: {list(KINDS)}")
    form = resolve_impl(impl)
    if form == "xla":
        return _xla(kind)
    if form == "onednn" and kind in onednn.FORMS:
        return _checked_onednn(kind, required=impl == "onednn")
    return getattr(batched if form == "batched" else matmul, kind)
