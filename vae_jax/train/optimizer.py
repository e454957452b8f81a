"""Optimizers by name, with the learning rate as an array (so sweeps vmap over it), and schedules."""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from vae_jax.errors import ConfigError

OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop}
SCHEDULES = ("constant", "burda")


def burda_boundaries(stage0_steps: int, num_stages: int) -> list[int]:
    """Steps at which Burda et al.'s stages end: stage i lasts 3^i * stage0_steps, i = 0..num_stages-1."""
    ends, total = [], 0
    for i in range(num_stages):
        total += 3**i * stage0_steps
        ends.append(total)
    return ends


def burda_schedule(stage0_steps: int, num_stages: int) -> optax.Schedule:
    """Learning-rate multiplier of Burda et al. 2016, Sec. 5: 10^(-i/7) in stage i, piecewise constant.

    With optim.learning_rate = 1e-3, stage0_steps = one pass over the data and 8 stages this
    is the paper's 3^i passes at 1e-3 * 10^(-i/7), i = 0..7.
    """
    ends = burda_boundaries(stage0_steps, num_stages)[:-1]
    return optax.piecewise_constant_schedule(1.0, {end: 10.0 ** (-1.0 / 7.0) for end in ends})


def make_optimizer(optim: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """The optax optimizer named optim.name, with the learning rate as an injected hyperparameter.

    inject_hyperparams keeps the learning rate in the optimizer state as an array, so
    a sweep over learning rates is one vmapped program. A schedule (optim.schedule) scales
    the updates by a multiplier of the step, so a swept learning rate keeps its schedule.
    """
    if optim.name not in OPTIMIZERS:
        raise ConfigError(f"optim.name={optim.name!r} is not known; valid: {sorted(OPTIMIZERS)}")
    kwargs = dict(optim.get("kwargs", {}) or {})
    tx = optax.inject_hyperparams(OPTIMIZERS[optim.name])(learning_rate=optim.learning_rate, **kwargs)
    if optim.get("schedule", "constant") == "burda":
        tx = optax.chain(tx, optax.scale_by_schedule(burda_schedule(optim.stage0_steps, optim.num_stages)))
    if optim.get("grad_clip"):
        tx = optax.chain(optax.clip_by_global_norm(optim.grad_clip), tx)
    return tx


def set_learning_rate(opt_state, learning_rate: jax.Array):
    """Returns opt_state with the injected learning rate replaced (for sweeps)."""

    def replace(state):
        if isinstance(state, optax.InjectHyperparamsState):
            hyper = dict(state.hyperparams)
            hyper["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
            return state._replace(hyperparams=hyper)
        return state

    return jax.tree.map(replace, opt_state, is_leaf=lambda s: isinstance(s, optax.InjectHyperparamsState))
