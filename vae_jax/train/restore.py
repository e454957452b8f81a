"""`load_run`: a trained run (or one sweep member) read back from its workdir alone.

The workdir's `config.json` rebuilds the model, `run.json` (written by the trainers) gives the
data's shape and, for a sweep, which program directory holds which members, so nothing of the
dataset is loaded. The checkpoint is restored against `jax.eval_shape` targets on this process's
first device. The returned `TrainedRun` encodes, decodes, reconstructs and samples through
`vae_jax.evaluate.inference`, batched and jitted.
"""

import dataclasses
import json
import logging
from pathlib import Path

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from vae_jax.errors import UserError
from vae_jax.evaluate.ground_truth import Representation
from vae_jax.evaluate.inference import Inference
from vae_jax.models import build_model
from vae_jax.train import checkpoint, sweep_spec
from vae_jax.train.state import create_train_state
from vae_jax.train.sweep_step import create_sweep_state
from vae_jax.train.workdir import RUN_INFO, read_run_info


@dataclasses.dataclass
class TrainedRun:
    """A trained model and its variables, with batched, jitted inference (numpy in, numpy out).

    Attributes:
      config: the run's resolved config (a sweep member's own, without the sweep).
      model: the Flax module.
      variables: its Flax variables, `model.apply(run.variables, x)`.
      step: the train step of the restored checkpoint.
      workdir: where the run lives; member: the sweep member's index, or None.
    """

    config: ml_collections.ConfigDict
    model: nn.Module
    variables: dict
    step: int
    workdir: Path
    member: int | None = None

    def __post_init__(self):
        self.inference = Inference(
            self.model, self.variables, self.config.loss.likelihood, self.config.eval.batch_size
        )

    @property
    def representation(self) -> Representation:
        """The model as the disentanglement metrics' representation_fn (with a VAE's posterior)."""
        return Representation(self.inference)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The code of each example: the posterior mean (VAE), the code (AE) or code indices (VQ-VAE)."""
        return self.inference.encode(x)

    def posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, logvar) of q(z|x), each [N, d] (VAEs)."""
        return self.inference.posterior(x)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """The decoder's mean in data space for codes z [N, d] (code indices for a VQ-VAE)."""
        return self.inference.decode(z)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """The decoder's mean in data space for each example's code."""
        return self.inference.reconstruct(x)

    def sample(self, num: int, rng: jax.Array | int = 0) -> np.ndarray:
        """num decoded draws from the prior (VAEs); rng a key or an int seed."""
        key = jax.random.key(rng) if isinstance(rng, int) else rng
        return self.inference.sample(num, key)


def load_run(workdir: str | Path, step: int | None = None, member: int | None = None) -> TrainedRun:
    """Loads the run trained in workdir: its config, model and the variables of a checkpoint.

    Args:
      workdir: a run's workdir (what `python -m experiments.run --workdir=...` wrote).
      step: the checkpoint's step; None for the latest readable one.
      member: for a sweep's workdir, the member's index (the `member` column of
        sweep_results.csv); None for a single run.

    Returns:
      A TrainedRun. Raises UserError (one line in the CLI) when workdir holds no run, no
      checkpoint, or no such step or member.
    """
    workdir = Path(workdir)
    config = _read_config(workdir)
    info = read_run_info(workdir)
    if config.model.name in ("ppca", "vq_prior"):
        raise UserError(
            f"{workdir} holds a {config.model.name} run; load_run loads the autoencoders and VAEs that train "
            "by gradient (a pPCA is fitted in closed form; a code prior is loaded with its VQ-VAE)"
        )
    data_shape = tuple(info["data_shape"]) if "data_shape" in info else _data_shape_from_data(config, workdir)
    if config.sweep.spec:
        return _load_member(workdir, config, info, data_shape, step=step, member=member)
    if member is not None:
        raise UserError(f"{workdir} holds a single run, not a sweep: load it without member=")
    model = build_model(config, data_shape)
    abstract = jax.eval_shape(
        lambda key: create_train_state(model, config, data_shape, key), jax.random.key(0)
    )
    state = _restore(workdir, abstract, step)
    return TrainedRun(config, model, state.variables, int(state.step), workdir)


def _read_config(workdir: Path) -> ml_collections.ConfigDict:
    path = workdir / "config.json"
    if not path.is_file():
        raise UserError(
            f"{workdir} holds no run (no config.json): train one there first "
            f"(python -m experiments.run --config=... --workdir={workdir})"
        )
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def _data_shape_from_data(config, workdir: Path) -> tuple[int, ...]:
    """The data shape of a workdir written before run.json existed: from the dataset itself."""
    from vae_jax import data as data_lib  # loads the dataset: only for such workdirs

    logging.warning("%s has no %s; loading the dataset to learn its shape", workdir, RUN_INFO)
    return tuple(data_lib.load_dataset(config).data_shape)


def _load_member(workdir: Path, config, info: dict, data_shape, *, step, member) -> TrainedRun:
    """Sweep member `member`: its program's stacked checkpoint restored, its slice taken."""
    assignments = sweep_spec.parse_sweep(config.sweep.spec, config)
    if member is None or not 0 <= member < len(assignments):
        raise UserError(
            f"{workdir} is a sweep of {len(assignments)} members: pass member=i with 0 <= i < "
            f"{len(assignments)} (the `member` column of sweep_results.csv)"
        )
    programs = info.get("programs") or _default_programs(assignments)
    found = [(p["dir"], p["members"]) for p in programs if member in p["members"]]
    if not found:
        raise UserError(f"member {member} was not trained in {workdir} (its members: "
                        f"{sorted(m for p in programs for m in p['members'])})")  # fmt: skip
    program_dir, members = found[0]
    configs = [sweep_spec.member_config(config, assignments[m]) for m in members]
    model = build_model(configs[0], data_shape)
    abstract = jax.eval_shape(lambda: create_sweep_state(model, configs, data_shape)[0])
    state = _restore(workdir / program_dir, abstract, step)
    state = jax.tree.map(lambda x: x[members.index(member)], state)
    return TrainedRun(
        configs[members.index(member)], model, state.variables, int(state.step), workdir, member
    )


def _default_programs(assignments: list[dict]) -> list[dict]:
    """The program directories a one-process sweep writes (see `vae_jax.train.sweep`)."""
    groups = sweep_spec.programs(assignments)
    if len(groups) == 1:
        return [{"dir": ".", "members": groups[0]}]
    return [{"dir": f"program_{p}", "members": members} for p, members in enumerate(groups)]


def _restore(directory: Path, abstract, step: int | None):
    """The state of directory's checkpoint at step (None: the latest readable), on this process's
    first device."""
    if not (directory / "checkpoints").is_dir():
        raise checkpoint.MissingCheckpointError(f"no checkpoints/ in {directory}: train the run first")
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
    manager = checkpoint.make_manager(directory, async_save=False)
    try:
        if step is None:
            state = checkpoint.restore_latest(manager, target)
            if state is None:
                raise checkpoint.MissingCheckpointError(f"no checkpoint in {directory / 'checkpoints'}")
            return state
        if step not in manager.all_steps():
            steps = sorted(manager.all_steps())
            raise checkpoint.MissingCheckpointError(
                f"no checkpoint of step {step} in {directory / 'checkpoints'}; its steps: {steps}"
            )
        return manager.restore(step, args=ocp.args.StandardRestore(target))
    finally:
        manager.close()
