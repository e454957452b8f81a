"""The workdir writer every trainer uses: config.json, run.json, metrics.jsonl, TensorBoard, images,
results.json.

`config.json`, `run.json` and `results.json` are written atomically (a temporary file renamed over
the old one). Metrics go to metrics.jsonl (one `{step, split, **metrics}` object per event)
and to a TensorBoard event file (writers.py, neither through TensorFlow). Every line of
metrics.jsonl is written with a single `write` of a complete line and flushed, and
`read_metrics` skips a torn final line, so a crash never leaves a file that stops a reader.
Only process 0 writes, except a sweep member's own directory (`Workdir.member`).
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from vae_jax import viz
from vae_jax.errors import UserError
from vae_jax.train.writers import EventWriter, JsonlWriter

RUN_INFO = "run.json"  # what `load_run` needs beside config.json: the data's shape, a sweep's programs


class WorkdirError(UserError):
    """The workdir cannot hold a run (e.g. it is a file)."""


def check_workdir(path: str | Path) -> Path:
    """Raises WorkdirError unless path is a directory or can become one; returns it as a Path."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise WorkdirError(f"--workdir={path} is invalid: {p} is a file, not a directory; pick another")
    return path


def atomic_write(path: Path, text: str) -> None:
    """Writes text to path via a rename, so a crash leaves the old file or the new one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class _NoRecords:
    """The records of a member on a process that does not write metrics.jsonl (not process 0)."""

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        del step, scalars

    def close(self) -> None:
        pass


class Workdir:
    """What a run writes into its workdir; on processes other than 0 every write is a no-op.

    Args:
      path: the workdir (created if missing).
      tensorboard: also write TensorBoard events into path.
      jsonl: the metrics.jsonl writer to use (a sweep member shares the sweep's);
        default: path/metrics.jsonl.
      enabled: whether this process writes path's files (default: process 0's only); records
        go to jsonl wherever it is given.
    """

    def __init__(
        self,
        path: str | Path,
        tensorboard: bool = True,
        jsonl: JsonlWriter | None = None,
        enabled: bool | None = None,
    ):
        self.path = check_workdir(path)
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._jsonl, self._events = jsonl, None
        if self.enabled:
            self.path.mkdir(parents=True, exist_ok=True)
            self._jsonl = jsonl if jsonl is not None else JsonlWriter(self.path / "metrics.jsonl")
            self._events = EventWriter(self.path) if tensorboard else None

    @property
    def images_dir(self) -> Path:
        """images/, where the PNG grids and plots go."""
        return self.path / "images"

    def member(self, path: str | Path, owner: bool | None = None, **fields: Any) -> "Workdir":
        """A writer for a sweep member: its own TensorBoard run and pictures in path, and records
        in this workdir's metrics.jsonl carrying `fields`.

        Args:
          path: the member's directory.
          owner: whether this process writes path's files: the process that holds the member
            (in a multi-process sweep, `sharding.member_owners`; default: process 0). Its records go to
            metrics.jsonl from process 0 alone, whichever process owns it.
          **fields: keys added to each of its metrics.jsonl records.

        Returns:
          The member's Workdir (close it before this one).
        """
        jsonl = self._jsonl.with_fields(**fields) if self._jsonl is not None else _NoRecords()
        return Workdir(path, tensorboard=True, jsonl=jsonl, enabled=owner)

    def write_config(self, config: ml_collections.ConfigDict) -> None:
        """config.json: the resolved config."""
        if self.enabled:
            atomic_write(self.path / "config.json", config.to_json_best_effort(indent=2))

    def write_run_info(self, **fields: Any) -> None:
        """run.json: what reading the run back needs beside its config (`vae_jax.load_run`):
        `data_shape` (one example's shape), and for a sweep `programs` ([{"dir", "members"}]:
        which directory's checkpoints hold which members, in their stacked order)."""
        if self.enabled:
            atomic_write(self.path / RUN_INFO, json.dumps({**read_run_info(self.path), **fields}, indent=2))

    def write_results(self, results: Mapping[str, Any]) -> None:
        """results.json: the final evaluation."""
        if self.enabled:
            atomic_write(self.path / "results.json", json.dumps(results, indent=2))

    def log(self, step: int, split: str, metrics: Mapping[str, Any]) -> None:
        """Appends one `split` record of metrics' scalars (to TensorBoard as `split/name`).

        Args:
          step: the train step the metrics belong to.
          split: 'train' or 'eval'.
          metrics: name -> value; non-scalars are left out, non-finite values become null.
        """
        if self._jsonl is None and self._events is None:
            return
        scalars = {
            f"{split}/{k}": float(np.asarray(v))
            for k, v in metrics.items()
            if np.ndim(v) == 0 and k not in ("step", "split")  # the record's own keys
        }
        if self._jsonl is not None:
            self._jsonl.write_scalars(int(step), scalars)
        if self._events is not None:
            self._events.write_scalars(int(step), scalars)

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """Sends image grids [H, W, C] (already saved as PNG) to TensorBoard."""
        if self._events is not None and images:
            self._events.write_images(int(step), images)

    def write_grid(self, name: str, step: int, images: np.ndarray, ncols: int) -> None:
        """images/<name>_<step>.png: a grid of images [N, H, W, C], also sent to TensorBoard."""
        if self.enabled:
            self.images_dir.mkdir(exist_ok=True)
            grid = viz.save_grid(self.images_dir / f"{name}_{step}.png", images, ncols)
            self.write_images(step, {name: grid})

    def close(self) -> None:
        """Flushes and closes the files this writer opened."""
        if self._jsonl is not None:
            self._jsonl.close()
        if self._events is not None:
            self._events.close()


def read_run_info(workdir: str | Path) -> dict:
    """The run.json of workdir, {} if it has none."""
    path = Path(workdir) / RUN_INFO
    return json.loads(path.read_text()) if path.is_file() else {}


def read_metrics(path: str | Path) -> list[dict]:
    """All complete records of a metrics.jsonl; a torn last line (crash mid-write) is skipped.

    Args:
      path: a metrics.jsonl.

    Returns:
      The records, in order.
    """
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
