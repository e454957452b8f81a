"""The train step: compiles once, lowers the loss, guards NaNs, and is device-count invariant."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import common
from tests.helpers import device_count_flags
from vae_jax.models import build_model
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_eval_step, make_train_step

ROOT = Path(__file__).resolve().parents[1]


def _setup(name="vae", **model):
    c = common.base_config()
    c.model.name = name
    c.model.hidden = (64,)
    c.model.latent_dim = 4
    c.model.update(model)
    if name == "vqvae":
        c.model.vq.num_codes, c.model.vq.code_dim, c.model.vq.ema = 16, 4, True
    model_ = build_model(c, (28, 28, 1))
    state = create_train_state(model_, c, (28, 28, 1), jax.random.key(0))
    return c, state


@pytest.mark.parametrize("name", ["ae", "vae", "vqvae"])
def test_steps_lower_loss_without_nan_and_compile_once(name):
    c, state = _setup(name)
    traces = []

    def counted(state, batch, rng):
        traces.append(1)
        return make_train_step(c.loss.likelihood)(state, batch, rng)

    step = jax.jit(counted, donate_argnums=0)
    batch = jnp.asarray(np.random.default_rng(0).random((32, 28, 28, 1)) > 0.5, jnp.float32)
    losses = []
    for _ in range(5):
        state, metrics = step(state, batch, jax.random.key(1))
        losses.append(float(metrics["loss"]))
        assert metrics["finite"] == 1.0
    assert len(traces) == 1, "train step retraced"
    assert step._cache_size() == 1
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert int(state.step) == 5
    leaves = jax.tree.leaves(state.params)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves)


def test_rng_is_folded_with_step():
    c, state = _setup("vae")
    step = jax.jit(make_train_step(c.loss.likelihood))
    batch = jnp.full((8, 28, 28, 1), 0.5)
    _, m0 = step(state, batch, jax.random.key(1))
    _, m0_again = step(state, batch, jax.random.key(1))
    _, m1 = step(state.replace(step=state.step + 1), batch, jax.random.key(1))
    assert float(m0["loss"]) == float(m0_again["loss"])
    assert float(m0["loss"]) != float(m1["loss"])


def test_non_finite_step_keeps_the_state():
    c, state = _setup("vae")
    step = jax.jit(make_train_step(c.loss.likelihood))
    bad = jnp.full((8, 28, 28, 1), jnp.nan)
    new, metrics = step(state, bad, jax.random.key(0))
    assert float(metrics["finite"]) == 0.0
    assert int(new.step) == int(state.step)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_eval_step_returns_per_example_terms():
    c, state = _setup("vae")
    out = jax.jit(make_eval_step(c.loss.likelihood))(state, jnp.zeros((5, 28, 28, 1)), jax.random.key(0))
    assert out["neg_elbo"].shape == (5,) and out["kl_per_dim"].shape == (5, 4)
    np.testing.assert_allclose(out["neg_elbo"], out["rec"] + out["kl"], rtol=1e-5)


def _run_worker(kinds, devices, out):
    env = dict(os.environ, XLA_FLAGS=device_count_flags(devices), JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, str(ROOT / "tests/dp_worker.py"), ",".join(kinds), str(out)]
    subprocess.run(cmd, env=env, check=True)
    return dict(np.load(out))


@pytest.mark.slow
def test_one_device_and_eight_devices_agree(tmp_path):
    """Three data-parallel steps of the VAE and the EMA VQ-VAE (one process per device count)."""
    kinds = ("vae", "vqvae_ema")
    one = _run_worker(kinds, 1, tmp_path / "one.npz")
    eight = _run_worker(kinds, 8, tmp_path / "eight.npz")
    assert int(one.pop("__devices__")) == 1 and int(eight.pop("__devices__")) == 8
    assert one.keys() == eight.keys()
    assert {k.split("/")[0] for k in one} == set(kinds)
    assert any("codebook" in k for k in one if k.startswith("vqvae_ema/"))
    for k in one:
        np.testing.assert_allclose(eight[k], one[k], rtol=1e-5, atol=1e-6, err_msg=k)
