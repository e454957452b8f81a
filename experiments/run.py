"""Command-line entry point: flags -> vae_jax.train.train_and_evaluate.

  python -m experiments.run --config=experiments/beta_vae.py:quick \
      [--config.loss.beta=8.0 ...] [--workdir=runs/mine] [--mode=train|eval]
"""

import sys
from pathlib import Path

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from vae_jax import data, train
from vae_jax.ops import allocator

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:preset].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default runs/<config name>).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (resuming) or only evaluate.")
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False, "Resume a workdir even though its saved config differs."
)
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show the full traceback of errors.")

# Errors that are the user's to fix: one line, non-zero exit, no traceback (unless --verbose).
USER_ERRORS = (
    train.ConfigError,
    data.DatasetUnavailableError,
    train.NonFiniteError,
    FileNotFoundError,
    ValueError,
)
flags.mark_flags_as_required(["config"])


class _QuietLibraries(logging.logging.Filter):
    """Drops the per-save INFO chatter of Orbax so the progress line stays readable."""

    def filter(self, record):
        return record.levelno >= logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
    del argv
    allocator.keep_freed_memory()  # before XLA allocates; VAE_JAX_MALLOC=system keeps glibc's defaults
    logging.get_absl_handler().addFilter(_QuietLibraries())
    config = _CONFIG.value
    workdir = _WORKDIR.value or Path("runs") / config.name  # e.g. runs/beta_vae_quick
    logging.info("JAX %s, devices: %s", jax.__version__, jax.devices())
    logging.info("Workdir: %s", workdir)
    try:
        if _MODE.value == "eval":
            results = train.evaluate_checkpoint(config, workdir)
        else:
            results = train.train_and_evaluate(config, workdir, _ALLOW_CHANGE.value)
    except USER_ERRORS as e:
        if _VERBOSE.value:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    logging.info("Results: %s", results)


def parse_flags(argv):
    """absl's flag parsing, but a bad --config (e.g. an unknown preset) ends in one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        print(f"error: {lines[-1] if lines else e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
