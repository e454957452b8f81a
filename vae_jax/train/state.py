"""Train state, optimizers and the numeric hyperparameters that enter the step as arrays."""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from vae_jax.errors import ConfigError
from vae_jax.models.discriminator import Discriminator

OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop}
# Loss hyperparameters that live in the state as float arrays, so a sweep can vmap over them.
LOSS_HPARAMS = (
    "beta", "beta_warmup", "gamma", "c_max", "anneal_steps", "commitment_cost",
    "tc_beta", "factor_gamma", "dip_lambda_od", "dip_lambda_d_factor", "ciwae_beta",
)  # fmt: skip
SCHEDULES = ("constant", "burda")
# config.loss.method: the objective of a Gaussian VAE (vae_jax.objectives_disentangle); 'vae' is
# beta-VAE and, with loss.gamma > 0, the capacity-annealed VAE.
LOSS_METHODS = ("vae", "beta_tcvae", "dip_vae_i", "dip_vae_ii", "factor_vae")


class LossSpec(NamedTuple):
    """The structural (static) choices of the objective; its numbers live in TrainState.hparams."""

    method: str = "vae"
    tc_estimator: str = "minibatch"  # beta-TCVAE's TC estimator: 'minibatch' (dlib) | 'mws' | 'mss'
    dataset_size: int = 0  # N of the 'mws' / 'mss' estimators


def loss_spec_from_config(config: ml_collections.ConfigDict) -> LossSpec:
    loss = config.loss
    return LossSpec(loss.get("method", "vae"), loss.get("tc_estimator", "minibatch"),
                    int(loss.get("tc_dataset_size", 0)))  # fmt: skip


class TrainState(struct.PyTreeNode):
    """Everything a train step reads and writes. `hparams` are arrays, never static."""

    step: jax.Array  # [] int32
    params: Any
    opt_state: optax.OptState
    model_state: Any  # non-parameter collections, e.g. the EMA codebook ('vq')
    hparams: dict[str, jax.Array]  # LOSS_HPARAMS, float32 scalars
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    # FactorVAE's discriminator, {'params', 'opt_state'}, trained by the same step; {} otherwise.
    disc: dict = struct.field(default_factory=dict)
    loss_spec: LossSpec = struct.field(pytree_node=False, default=LossSpec())
    disc_apply_fn: Callable | None = struct.field(pytree_node=False, default=None)
    disc_tx: optax.GradientTransformation | None = struct.field(pytree_node=False, default=None)


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


def hparams_from_config(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    """The loss hyperparameters of config.loss as float32 scalars."""
    return {k: jnp.asarray(float(config.loss[k]), jnp.float32) for k in LOSS_HPARAMS}


def set_learning_rate(opt_state, learning_rate: jax.Array):
    """Returns opt_state with the injected learning rate replaced (for sweeps)."""

    def replace(state):
        if isinstance(state, optax.InjectHyperparamsState):
            hyper = dict(state.hyperparams)
            hyper["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
            return state._replace(hyperparams=hyper)
        return state

    return jax.tree.map(replace, opt_state, is_leaf=lambda s: isinstance(s, optax.InjectHyperparamsState))


@functools.partial(jax.jit, static_argnums=(0, 2))
def init_variables(model: nn.Module, rng: jax.Array, data_shape: tuple[int, ...]) -> dict:
    """The model's variables from rng, as one compiled program (op by op, a conv model's init
    compiles a few hundred small programs: 3x slower)."""
    params_rng, sample_rng, vq_rng = jax.random.split(rng, 3)
    x = jnp.zeros((2, *data_shape), jnp.float32)
    return model.init({"params": params_rng, "sample": sample_rng, "vq": vq_rng}, x)


def create_train_state(
    model: nn.Module,
    config: ml_collections.ConfigDict,
    data_shape: tuple[int, ...],
    rng: jax.Array,
    *,
    hparams: dict[str, jax.Array] | None = None,
    learning_rate: jax.Array | None = None,
) -> TrainState:
    """Initializes parameters from rng and builds the optimizer of config.optim."""
    variables = init_variables(model, rng, tuple(data_shape))
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}
    tx = make_optimizer(config.optim)
    opt_state = jax.jit(tx.init)(params)
    if learning_rate is not None:
        opt_state = set_learning_rate(opt_state, learning_rate)
    spec = loss_spec_from_config(config)
    disc_fields = {}
    if spec.method == "factor_vae":
        disc_fields = _discriminator_fields(config, jax.random.fold_in(rng, 7))
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=opt_state,
        model_state=model_state,
        hparams=hparams if hparams is not None else hparams_from_config(config),
        apply_fn=model.apply,
        tx=tx,
        loss_spec=spec,
        **disc_fields,
    )


@functools.cache
def _discriminator(hidden: tuple[int, ...]) -> Discriminator:
    """One module per architecture, so states built apart share `disc_apply_fn` (one jit trace)."""
    return Discriminator(hidden)


def _discriminator_fields(config: ml_collections.ConfigDict, rng: jax.Array) -> dict:
    """FactorVAE's discriminator (config.model.disc_hidden) and its optimizer (config.optim.discriminator)."""
    disc = _discriminator(tuple(config.model.disc_hidden))
    params = disc.init(rng, jnp.zeros((2, config.model.latent_dim), jnp.float32))["params"]
    tx = make_optimizer(config.optim.discriminator)
    return {
        "disc": {"params": params, "opt_state": tx.init(params)},
        "disc_apply_fn": disc.apply,
        "disc_tx": tx,
    }
