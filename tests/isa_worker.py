"""Whole-model train steps in the oneDNN form against the matrix-product form, in one process.

Run by tests/test_native.py with ONEDNN_MAX_CPU_ISA set, since oneDNN reads it once per
process: a beta-VAE step on 64x64 dSprites shapes, a VQ-VAE step on 28x28, and one step of a
4-member vmapped beta sweep. Exits non-zero (an AssertionError or a crash) when a form fails
or the two disagree; prints the largest relative parameter difference of each.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from experiments import beta_vae, vq_vae
from vae_jax.models import build_model
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_train_step
from vae_jax.train.sweep_spec import member_config
from vae_jax.train.sweep_step import create_sweep_state


def _max_rel_diff(a, b) -> float:
    diffs = [np.max(np.abs(x - y)) / (1e-6 + np.max(np.abs(y))) for x, y in zip(a, b, strict=True)]
    return float(max(diffs))


def _model_steps(config, shape, impl, steps=2, batch=4):
    config.model.conv_impl = impl
    state = create_train_state(build_model(config, shape), config, shape, jax.random.key(0))
    step = jax.jit(make_train_step(config.loss.likelihood))
    for i in range(steps):
        x = jax.random.bernoulli(jax.random.key(10 + i), 0.2, (batch, *shape)).astype(jnp.float32)
        state, metrics = step(state, x, jax.random.key(i))
    assert float(metrics["finite"]) == 1.0, f"{impl}: non-finite step"
    return [np.asarray(p) for p in jax.tree.leaves(state.params)]


def _sweep_step(impl, shape=(64, 64, 1), batch=4):
    base = beta_vae.get_config("smoke")
    base.model.conv_impl = impl
    configs = [member_config(base, {"loss.beta": b}) for b in (1.0, 2.0, 4.0, 8.0)]
    states, rngs = create_sweep_state(build_model(base, shape), configs, shape)
    step = jax.jit(jax.vmap(make_train_step(base.loss.likelihood), in_axes=(0, None, 0)))
    x = jax.random.bernoulli(jax.random.key(7), 0.2, (batch, *shape)).astype(jnp.float32)
    states, metrics = step(states, x, rngs)
    assert np.all(np.asarray(metrics["finite"]) == 1.0), f"{impl}: non-finite sweep step"
    return [np.asarray(p) for p in jax.tree.leaves(states.params)]


def main() -> int:
    cases = {
        "beta_vae": lambda impl: _model_steps(beta_vae.get_config("smoke"), (64, 64, 1), impl),
        "vq_vae": lambda impl: _model_steps(vq_vae.get_config("smoke"), (28, 28, 1), impl),
        "sweep_vmap_4": _sweep_step,
    }
    for name in sys.argv[1:] or cases:
        diff = _max_rel_diff(cases[name]("onednn"), cases[name]("matmul"))
        print(f"{name}: max relative parameter difference {diff:.2e}", flush=True)
        assert diff < 1e-3, f"{name}: the oneDNN step differs from the matrix-product step ({diff:.2e})"
    return 0


if __name__ == "__main__":
    sys.exit(main())
