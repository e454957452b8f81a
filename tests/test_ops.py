"""The matrix-product (and, where built, oneDNN) forms of the 4x4 stride-2 layers equal XLA's
convolutions: values and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import ops
from vae_jax.models import ConvDecoder, ConvEncoder
from vae_jax.models.layers import ConvSame, StridedConv, StridedConvTranspose
from vae_jax.ops import onednn, resolve_impl


def _assert_same_function(fast, plain, x):
    """Same parameter tree, same outputs, same gradients wrt parameters and input."""
    variables = plain.init(jax.random.key(1), x)
    # Non-zero biases and non-default weights, so every parameter is exercised.
    variables = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), variables)
    assert jax.tree.structure(fast.init(jax.random.key(1), x)) == jax.tree.structure(variables)
    y = plain.apply(variables, x)
    np.testing.assert_allclose(fast.apply(variables, x), y, rtol=1e-5, atol=1e-4)
    w = jax.random.normal(jax.random.key(3), y.shape)
    g_plain = jax.grad(lambda v, x: jnp.sum(plain.apply(v, x) * w), argnums=(0, 1))(variables, x)
    g_fast = jax.grad(lambda v, x: jnp.sum(fast.apply(v, x) * w), argnums=(0, 1))(variables, x)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


# The CPU forms tested against XLA's layers: oneDNN's where its kernels are built (tests/test_native.py
# makes CI require them).
FAST_IMPLS = ("matmul", "batched", "onednn") if onednn.available() else ("matmul", "batched")
IMPLS = (*FAST_IMPLS, "xla")
# Whole networks in the CPU forms ('batched', a form for vmapped sweeps, is checked layer by layer
# here and as whole sweeps in tests/test_sweep.py).
NETWORK_IMPLS = tuple(i for i in FAST_IMPLS if i != "batched")

# Channel counts on both sides of the im2col threshold (C <= 4 gathers taps, more uses space-to-depth).
CONV_CASES = [((2, 8, 8, 1), 5), ((3, 8, 6, 16), 3), ((1, 2, 2, 5), 2), ((2, 4, 4, 4), 7)]


@pytest.mark.slow
@pytest.mark.parametrize("shape,features", CONV_CASES)
def test_strided_conv_equals_conv(shape, features):
    x = jax.random.normal(jax.random.key(0), shape)
    plain = nn.Conv(features, (4, 4), strides=2, padding="SAME")
    for impl in IMPLS:
        _assert_same_function(StridedConv(features, impl), plain, x)


@pytest.mark.slow
@pytest.mark.parametrize("shape,features", [((2, 4, 4, 3), 5), ((3, 8, 6, 16), 1), ((1, 1, 1, 2), 4)])
def test_strided_conv_transpose_equals_conv_transpose(shape, features):
    x = jax.random.normal(jax.random.key(0), shape)
    plain = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")
    for impl in IMPLS:
        _assert_same_function(StridedConvTranspose(features, impl), plain, x)


@pytest.mark.parametrize("kernel,shape,features", [((1, 1), (2, 7, 7, 6), 4), ((3, 3), (2, 7, 5, 3), 8)])
def test_conv_same_equals_conv(kernel, shape, features):
    x = jax.random.normal(jax.random.key(0), shape)
    plain = nn.Conv(features, kernel)
    _assert_same_function(ConvSame(features, kernel, "matmul"), plain, x)
    _assert_same_function(ConvSame(features, kernel, "xla"), plain, x)


@pytest.mark.slow
def test_vq_vae_networks_equal_in_every_impl():
    """The spatial (VQ-VAE) encoder and decoder, with their 1x1 and 3x3 layers, in both impls."""
    x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
    enc = {
        impl: ConvEncoder(16, channels=(32, 64), spatial=True, impl=impl) for impl in (*NETWORK_IMPLS, "xla")
    }
    variables = enc["xla"].init(jax.random.key(1), x)
    for impl in NETWORK_IMPLS:
        np.testing.assert_allclose(enc[impl].apply(variables, x), enc["xla"].apply(variables, x), atol=1e-4)
    z = jax.random.normal(jax.random.key(0), (2, 7, 7, 16))
    dec = {
        impl: ConvDecoder((28, 28, 1), channels=(32, 64), spatial=True, impl=impl)
        for impl in (*NETWORK_IMPLS, "xla")
    }
    variables = dec["xla"].init(jax.random.key(1), z)
    for impl in NETWORK_IMPLS:
        np.testing.assert_allclose(dec[impl].apply(variables, z), dec["xla"].apply(variables, z), atol=1e-4)


@pytest.mark.slow
def test_dsprites_networks_equal_in_every_impl():
    """The full dSprites encoder and decoder give the same outputs with either impl and one parameter set."""
    x = jax.random.bernoulli(jax.random.key(0), 0.1, (2, 64, 64, 1)).astype(jnp.float32)
    enc = {impl: ConvEncoder(20, impl=impl) for impl in (*NETWORK_IMPLS, "xla")}
    variables = enc["xla"].init(jax.random.key(1), x)
    for impl in NETWORK_IMPLS:
        np.testing.assert_allclose(enc[impl].apply(variables, x), enc["xla"].apply(variables, x), atol=1e-4)
    z = jax.random.normal(jax.random.key(0), (2, 10))
    dec = {impl: ConvDecoder((64, 64, 1), impl=impl) for impl in (*NETWORK_IMPLS, "xla")}
    variables = dec["xla"].init(jax.random.key(1), z)
    for impl in NETWORK_IMPLS:
        np.testing.assert_allclose(dec[impl].apply(variables, z), dec["xla"].apply(variables, z), atol=1e-4)


def test_impl_resolution():
    cpu = "onednn" if onednn.available() else "matmul"
    assert resolve_impl("auto") == (cpu if jax.default_backend() == "cpu" else "xla")
    assert resolve_impl("xla") == "xla"
    assert resolve_impl("auto", platform="cuda") == resolve_impl("auto", platform="tpu") == "xla"
    # A vmapped sweep's layers: batched products off the CPU; on it the single run's form.
    assert ops.VMAPPED_FORM in ("matmul", "batched")
    assert resolve_impl("auto", platform="cuda", vmapped=True) == ops.VMAPPED_FORM
    assert resolve_impl("auto", platform="cpu", vmapped=True) == cpu
    with ops.vmapped_sweep():
        assert resolve_impl("auto", platform="tpu") == ops.VMAPPED_FORM
        assert resolve_impl("xla", platform="tpu") == "xla"  # asked for: kept
    assert resolve_impl("auto", platform="tpu") == "xla"
    with pytest.raises(ValueError, match="conv_impl"):
        resolve_impl("cudnn")
    with pytest.raises(ValueError, match="kind"):
        ops.convolution("conv_5x5", "auto")


def _members_value_and_grads(form, x, kernels, x_per_member: bool):
    """Each member's layer value and both gradients, vmapped over members' kernels (and inputs)."""

    def one(x, kernel):
        y, vjp = jax.vjp(form, x, kernel)
        return (y, *vjp(jnp.sin(y)))

    return jax.vmap(one, in_axes=(0 if x_per_member else None, 0))(x, kernels)


@pytest.mark.slow
@pytest.mark.parametrize("kind,shape,features", [("conv_4x4_s2", (2, 8, 8, 6), 5),
                                                 ("conv_transpose_4x4_s2", (2, 4, 4, 6), 5)])  # fmt: skip
def test_vmapped_product_forms_are_batched_matrix_products(kind, shape, features):
    """Vmapped over members with a kernel each, the product forms lower to dot_generals with the
    member as a batch dimension, forward and both gradients, equal to each member's own XLA
    convolution; XLA's own form lowers to grouped convolutions."""
    members = 3
    c = shape[-1]
    kernels = jax.random.normal(jax.random.key(1), (members, 4, 4, c, features))
    for x_per_member in (False, True):  # the first layer shares the batch; the others do not
        x = jax.random.normal(jax.random.key(0), ((members,) if x_per_member else ()) + shape)
        args = (x, kernels, x_per_member)
        want = _members_value_and_grads(ops.convolution(kind, "xla"), *args)
        for impl in ("matmul", "batched"):
            form = ops.convolution(kind, impl)
            got = _members_value_and_grads(form, *args)
            for a, b in zip(got, want, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
            text = jax.jit(_members_value_and_grads, static_argnums=(0, 3)).lower(form, *args).as_text()
            assert "stablehlo.convolution" not in text, impl
            dots = [line for line in text.splitlines() if "stablehlo.dot_general" in line]
            # Per-member inputs: value and both gradients batched over members; a shared input
            # (the first layer) folds the members into the product's columns, but its input
            # gradient stays batched.
            batched = sum("batching_dims = [0] x [0]" in d for d in dots)
            assert batched >= (3 if x_per_member else 1), (impl, dots)
        xla = jax.jit(_members_value_and_grads, static_argnums=(0, 3)).lower(
            ops.convolution(kind, "xla"), *args
        )
        assert "_group_count = 3" in xla.as_text()
