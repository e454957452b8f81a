"""`train_and_evaluate`: picks the trainer a config names and runs it in its workdir.

The trainers (single run, sweep, VQ prior, closed-form pPCA) are known here by name;
none of them imports this module or another trainer.
"""

from collections.abc import Callable
from pathlib import Path

import ml_collections

from vae_jax.train import closed_form, prior_training, single, sweep
from vae_jax.train.validate import validate_config
from vae_jax.train.workdir import check_workdir


def _prior(config, workdir, allow_config_change: bool = False) -> dict:
    del allow_config_change  # the prior retrains from its VQ-VAE's codes: nothing to protect
    return prior_training.train_prior(config, workdir)


def _ppca(config, workdir, allow_config_change: bool = False) -> dict:
    del allow_config_change  # fitted in closed form, in one go
    return closed_form.fit_and_evaluate(config, workdir)


# name -> trainer(config, workdir, allow_config_change) -> results.json
TRAINERS: dict[str, Callable[..., dict]] = {
    "single": single.train,
    "sweep": sweep.train_sweep,
    "vq_prior": _prior,
    "ppca": _ppca,
}


def trainer_name(config: ml_collections.ConfigDict) -> str:
    """The name in TRAINERS of the trainer for config."""
    if config.model.name in ("ppca", "vq_prior"):
        return config.model.name
    return "sweep" if config.sweep.spec else "single"


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | Path, allow_config_change: bool = False
) -> dict:
    """Trains config's model in workdir (resuming from its latest checkpoint); returns results.json.

    Raises ConfigError (before any compilation) for an invalid config, or when workdir holds a
    run with a different config and allow_config_change is False. A sweep
    (config.sweep.spec) returns {"members": rows of sweep_results.csv}.
    """
    validate_config(config)
    check_workdir(workdir)
    return TRAINERS[trainer_name(config)](config, workdir, allow_config_change)


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """--mode=eval: restores the latest checkpoint of workdir and evaluates it."""
    validate_config(config)
    return single.evaluate_checkpoint(config, check_workdir(workdir))
