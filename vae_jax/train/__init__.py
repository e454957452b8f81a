"""Training: one engine (Run, step loop), the trainers it runs by name, and their parts.

dispatch        train_and_evaluate / evaluate_checkpoint: the trainer a config names
single          the single run          sweep, sweep_spec (and slices), sweep_step, sweep_report
prior_training  the VQ-VAE's code prior closed_form   probabilistic PCA
engine          Run, train_loop, hooks  feed          batches into the jitted step
evaluation      eval-set metrics, bounds, scores, pictures
state           TrainState              optimizer     optimizers by name, schedules
losses          the loss of a step (LossSpec: the static loss choice)
steps           the pure train and eval steps
restore         load_run: a trained run read back from its workdir
multihost       host copies and gathers across processes; the stop all processes take at one step
sharding, checkpoint, workdir, writers, validate

The names below load on first use (PEP 562): importing one part, e.g. `vae_jax.train.sharding`
in a worker process, does not import every trainer's dependencies (the data pipeline,
scikit-learn, orbax).
"""

from vae_jax import _lazy

_EXPORTS = {
    "ConfigError": "vae_jax.train.validate",
    "NonFiniteError": "vae_jax.train.engine",
    "evaluate_checkpoint": "vae_jax.train.dispatch",
    "train_and_evaluate": "vae_jax.train.dispatch",
    "validate_config": "vae_jax.train.validate",
}
__all__ = sorted(_EXPORTS)
__getattr__ = _lazy.loader(__name__, _EXPORTS)
