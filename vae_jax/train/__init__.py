"""Training: state, pure steps, sharding, checkpoints, config validation, the loop."""

from vae_jax.train.loop import NonFiniteError, evaluate_checkpoint, train_and_evaluate
from vae_jax.train.validate import ConfigError, validate_config

__all__ = ["ConfigError", "NonFiniteError", "evaluate_checkpoint", "train_and_evaluate", "validate_config"]
