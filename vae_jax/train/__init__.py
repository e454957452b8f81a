"""Training: state, pure steps, sharding, checkpoints, the loop."""

from vae_jax.train.loop import NonFiniteError, evaluate_checkpoint, train_and_evaluate

__all__ = ["NonFiniteError", "evaluate_checkpoint", "train_and_evaluate"]
