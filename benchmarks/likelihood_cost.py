"""What each row of the MNIST likelihood table costs: Burda et al.'s full schedule at the measured rate.

Each row is `experiments/iwae.py` with the overrides of README's likelihood table (the paper's
3,280 passes over 60,000 images in batches of 20: 9.84M steps). One train step of batch 20
(dynamic binarization) is timed on this machine; the row's time is its steps at that rate. The
rows whose time exceeds `--cpu_hours` are the ones README marks as needing an accelerator (or
that many hours of this CPU): an estimate from a measured step, not a measured run.

  python -m benchmarks.likelihood_cost [--out=FILE] [--cpu_hours=24]
"""

import argparse

from benchmarks.common import environment, train_step_and_inputs, train_step_rate, write_results
from experiments import iwae
from vae_jax.train.validate import validate_config

SHAPE = (28, 28, 1)
# README's likelihood table: row name -> overrides of iwae.py (its defaults: IWAE, k = 50, tanh,
# one stochastic layer 784-200-200-50).
ROWS = {
    "VAE (k = 1)": {"loss.objective": "elbo", "loss.num_samples": 1},
    "VAE (k = 50)": {"loss.objective": "elbo", "loss.num_samples": 50},
    "IWAE (k = 5)": {"loss.num_samples": 5},
    "IWAE (k = 50)": {},
    "two layers, VAE (k = 1)": {
        "model.name": "vae2",
        "model.hidden": iwae.TWO_LAYER_HIDDEN,
        "loss.objective": "elbo",
        "loss.num_samples": 1,
    },
    "two layers, IWAE (k = 50)": {"model.name": "vae2", "model.hidden": iwae.TWO_LAYER_HIDDEN},
    "MIWAE (M = 8, K = 8)": {"loss.objective": "miwae", "loss.num_samples": 8, "loss.num_outer": 8},
    "PIWAE (M = 8, K = 8)": {"loss.objective": "piwae", "loss.num_samples": 8, "loss.num_outer": 8},
    "CIWAE (beta = 0.05)": {"loss.objective": "ciwae", "loss.ciwae_beta": 0.05},
    "VampPrior (k = 1)": {"model.prior": "vamp", "loss.objective": "elbo", "loss.num_samples": 1},
}


def row_config(overrides: dict):
    config = iwae.get_config()
    for key, value in overrides.items():
        section, field = key.split(".")
        if field not in config[section]:
            raise KeyError(f"iwae.py's config has no field {key}")
        config[section][field] = value
    validate_config(config)
    return config


def steps_per_second(config) -> float:
    """Median steps per second of the row's jitted train step (batch 20) on this machine."""
    return train_step_rate(*train_step_and_inputs(config, SHAPE), iters=200)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu_hours", type=float, default=24.0, help="longer rows need an accelerator")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = {}
    for name, overrides in ROWS.items():
        config = row_config(overrides)
        rate = steps_per_second(config)
        hours = config.train.num_steps / rate / 3600
        rows[name] = {
            "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
            "steps": config.train.num_steps,
            "cpu_steps_per_sec": rate,
            "cpu_hours_at_measured_rate": hours,
            "needs_accelerator": hours > args.cpu_hours,
        }
    write_results({"environment": environment(), "cpu_hours_limit": args.cpu_hours, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
