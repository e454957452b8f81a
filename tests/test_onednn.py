"""The oneDNN form of the 4x4 stride-2 layers (`model.conv_impl='onednn'`, 'auto' on CPU when built).

tests/test_strided.py checks it against XLA's layers with the other forms; here: CI
requires the kernels, a whole beta-VAE train step matches the matrix-product form,
sweeps (vmap) work, and bad input says what to change.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import beta_vae
from vae_jax.models import build_model, onednn
from vae_jax.models.strided import resolve_impl
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_train_step

needs_kernels = pytest.mark.skipif(
    not onednn.available(), reason="oneDNN kernels not built (python -m vae_jax.native)"
)


def test_kernels_are_built_where_required():
    """.ci/run installs g++ and libdnnl-dev and sets VAE_JAX_REQUIRE_ONEDNN=1: a broken build fails CI."""
    if os.environ.get("VAE_JAX_REQUIRE_ONEDNN") == "1":
        assert onednn.available(), (
            "the oneDNN kernels did not build: run `python -m vae_jax.native` to see why"
        )
    assert resolve_impl("auto") == ("onednn" if onednn.available() else "matmul")


def _step_outputs(impl):
    config = beta_vae.get_config()
    config.model.conv_impl = impl
    shape = (64, 64, 1)
    state = create_train_state(build_model(config, shape), config, shape, jax.random.key(0))
    batch = jax.random.bernoulli(jax.random.key(1), 0.1, (8, *shape)).astype(jnp.float32)
    new_state, metrics = jax.jit(make_train_step("bernoulli"))(state, batch, jax.random.key(2))
    return new_state.params, metrics


@needs_kernels
def test_beta_vae_train_step_matches_matmul_form():
    params_a, metrics_a = _step_outputs("onednn")
    params_b, metrics_b = _step_outputs("matmul")
    for key in ("loss", "rec", "kl", "grad_norm"):
        np.testing.assert_allclose(metrics_a[key], metrics_b[key], rtol=1e-4)
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@needs_kernels
def test_vmap_over_models_matches_one_at_a_time():
    """Sweeps vmap the step over members; the FFI calls then run member by member."""
    xs = jax.random.normal(jax.random.key(0), (3, 2, 8, 8, 4))
    ks = jax.random.normal(jax.random.key(1), (3, 4, 4, 4, 6))
    kts = jax.random.normal(jax.random.key(2), (3, 4, 4, 6, 5))

    def loss(x, k, kt):
        return jnp.sum(onednn.conv_transpose_4x4_s2(onednn.conv_4x4_s2(x, k), kt) ** 2)

    grad = jax.grad(loss, argnums=(0, 1, 2))
    grads = jax.vmap(grad)(xs, ks, kts)
    for i in range(3):
        one = grad(xs[i], ks[i], kts[i])
        for a, b in zip(grads, one, strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-4)


@needs_kernels
def test_odd_sizes_and_other_dtypes_are_refused():
    with pytest.raises(ValueError, match="even height and width"):
        onednn.conv_4x4_s2(jnp.zeros((1, 7, 8, 2)), jnp.zeros((4, 4, 2, 3)))
    with pytest.raises(ValueError, match="float32.*conv_impl='matmul'"):
        onednn.conv_4x4_s2(jnp.zeros((1, 8, 8, 2), jnp.bfloat16), jnp.zeros((4, 4, 2, 3), jnp.bfloat16))


def test_unbuilt_kernels_say_how_to_build(monkeypatch):
    monkeypatch.setattr(onednn, "available", lambda: False)
    with pytest.raises(ValueError, match="python -m vae_jax.native"):
        resolve_impl("onednn")
    assert resolve_impl("auto") == ("matmul" if jax.default_backend() == "cpu" else "xla")
