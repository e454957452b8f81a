"""Training: one engine (Run, step loop), the trainers it runs by name, and their parts.

dispatch      train_and_evaluate / evaluate_checkpoint: the trainer a config names
single        the single run            sweep, sweep_spec, sweep_report   sweeps
prior_training  the VQ-VAE's code prior  closed_form   probabilistic PCA
engine        Run, train_loop, hooks    feed          batches into the jitted step
evaluation    eval-set metrics, bounds, scores, pictures
steps, state  the pure train/eval steps and the train state
sharding, checkpoint, workdir, validate
"""

from vae_jax.train.dispatch import evaluate_checkpoint, train_and_evaluate
from vae_jax.train.engine import NonFiniteError
from vae_jax.train.validate import ConfigError, validate_config

__all__ = ["ConfigError", "NonFiniteError", "evaluate_checkpoint", "train_and_evaluate", "validate_config"]
