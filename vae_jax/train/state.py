"""The train state: everything a train step reads and writes, and its initialization from a config."""

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from vae_jax.models.discriminator import Discriminator
from vae_jax.train.losses import LossSpec, hparams_from_config
from vae_jax.train.optimizer import make_optimizer, set_learning_rate


def model_variables(params, model_state: dict) -> dict:
    """The Flax variables dict of a model: its parameters and its other collections (e.g. 'vq')."""
    return {"params": params, **model_state}


class TrainState(struct.PyTreeNode):
    """Everything a train step reads and writes. `hparams` are arrays, never static."""

    step: jax.Array  # [] int32
    params: Any
    opt_state: optax.OptState
    model_state: Any  # non-parameter collections, e.g. the EMA codebook ('vq')
    hparams: dict[str, jax.Array]  # losses.LOSS_HPARAMS, float32 scalars
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    # FactorVAE's discriminator, {'params', 'opt_state'}, trained by the same step; {} otherwise.
    disc: dict = struct.field(default_factory=dict)
    loss_spec: LossSpec = struct.field(pytree_node=False, default=LossSpec())
    disc_apply_fn: Callable | None = struct.field(pytree_node=False, default=None)
    disc_tx: optax.GradientTransformation | None = struct.field(pytree_node=False, default=None)

    @property
    def variables(self) -> dict:
        """The model's Flax variables: `model.apply(state.variables, x)`."""
        return model_variables(self.params, self.model_state)

    def variables_with(self, params) -> dict:
        """The model's variables with other parameters (those being differentiated)."""
        return model_variables(params, self.model_state)


@functools.partial(jax.jit, static_argnums=(0, 2))
def init_variables(model: nn.Module, rng: jax.Array, data_shape: tuple[int, ...]) -> dict:
    """The model's variables from rng, as one compiled program (op by op, a conv model's init
    would compile a few hundred small programs)."""
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
    spec = LossSpec.from_config(config.loss)
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
