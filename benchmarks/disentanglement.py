"""Time of the study's whole evaluation protocol per member: every metric of Locatello et al. 2019
at its default protocol (vae_jax.evaluate.protocol) on a 10-latent dSprites β-VAE, and the scores
of the PCA / ICA / raw-pixel baselines.

  python -m benchmarks.disentanglement [--workdir runs/beta_vae_quick] [--modes serial,parallel]
                                       [--skip-baselines] [--out FILE]

Without --workdir the model is freshly initialized; with it, the latest checkpoint of that run
(`vae_jax.load_run`) is scored: the time of SAP's dual solver depends on how well separated the
codes are, so a trained model gives the representative time. Each mode times the same
protocol and must give the same scores:
- serial: one classifier fit at a time, every metric drawing and encoding its own codes;
- parallel: DCI's per-factor fits on one thread and SAP's per-code fits in one process per core,
  and the draws that metrics make alike encoded once (`codes.SharedDraws`).
The factor grid is encoded once for both (`seconds_grid`); `seconds` per metric follow (the
parallel SAP's include starting its worker processes, once per Python process).
"""

import argparse
import json
import os
import shutil
import subprocess
import time

import jax
import numpy as np

from benchmarks.common import environment, write_results
from experiments import beta_vae
from vae_jax.data import get_ground_truth_data
from vae_jax.evaluate import baselines, disentanglement
from vae_jax.evaluate.codes import GridRepresentation, SharedDraws
from vae_jax.evaluate.ground_truth import Representation
from vae_jax.evaluate.inference import Inference
from vae_jax.models import build_model
from vae_jax.train.restore import load_run
from vae_jax.train.state import create_train_state

ALL = list(disentanglement.METRICS)
MODES = {"serial": (1, False), "parallel": (None, True)}  # (n_jobs, share_draws)


def model_representation(workdir: str | None):
    config = beta_vae.get_config()
    if workdir:
        run = load_run(workdir)
        return Representation(run.inference)
    model = build_model(config, (64, 64, 1))
    state = create_train_state(model, config, (64, 64, 1), jax.random.key(0))
    return Representation(Inference(model, state.variables, config.loss.likelihood))


def machine() -> dict:
    """Core count and `lscpu` of this machine (its flags decide the tree and liblinear speed)."""
    lscpu = shutil.which("lscpu")
    text = subprocess.run([lscpu], capture_output=True, text=True).stdout if lscpu else ""
    return {"cpu_count": os.cpu_count(), "lscpu": text}


def time_protocol(data, grid, mode: str, names=ALL) -> dict:
    """Scores and seconds per metric of the study's protocol in one mode, on an encoded grid."""
    n_jobs, share = MODES[mode]
    fn = SharedDraws(grid) if share else grid
    protocols = {"dci": {"n_jobs": n_jobs}, "sap": {"n_jobs": n_jobs}}
    scores, seconds = {}, {}
    for name in names:
        start = time.perf_counter()
        kwargs = {name: protocols[name]} if name in protocols else {}
        scores.update(disentanglement.compute_metrics([name], data, fn, share_draws=False, **kwargs))
        seconds[name] = time.perf_counter() - start
    return {"scores": scores, "seconds": seconds, "seconds_metrics": sum(seconds.values())}


def encoded_grid(data, fn) -> tuple[GridRepresentation, float]:
    start = time.perf_counter()
    grid = GridRepresentation(data, fn)
    grid.table()
    return grid, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--modes", default="serial,parallel")
    parser.add_argument("--skip-baselines", action="store_true")
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"--modes: unknown {unknown}; valid: {list(MODES)}")
    data = get_ground_truth_data("dsprites")
    result = {"environment": environment(), "machine": machine(), "workdir": args.workdir}
    grid, seconds_grid = encoded_grid(data, model_representation(args.workdir))
    result["seconds_grid"] = seconds_grid
    for mode in modes:
        result[mode] = time_protocol(data, grid, mode)
        result[mode]["seconds_per_member"] = seconds_grid + result[mode]["seconds_metrics"]
        print(mode, json.dumps(result[mode]), flush=True)
    if len(modes) > 1:
        result["scores_equal"] = all(result[m]["scores"] == result[modes[0]]["scores"] for m in modes)
    if not args.skip_baselines:
        rng = np.random.default_rng(0)
        for name, fn in (
            ("pca", baselines.pca_representation(data, rng)),
            ("ica", baselines.ica_representation(data, rng)),
        ):
            grid, seconds = encoded_grid(data, fn)
            result[name] = time_protocol(data, grid, modes[-1])
            print(name, json.dumps(result[name]), flush=True)
        # Raw pixels: the beta-VAE metric only (as in Higgins et al.); 4096-d codes, no grid cache.
        start = time.perf_counter()
        scores = disentanglement.compute_metrics(
            ["beta_vae_score"], data, baselines.pixel_representation, grid_cache=False
        )
        result["pixels"] = {"scores": scores, "seconds": time.perf_counter() - start}
        print("pixels", json.dumps(result["pixels"]), flush=True)
    write_results(result, args.out)


if __name__ == "__main__":
    main()
