"""Metric logging: `metrics.jsonl` (one JSON object per event) plus TensorBoard events.

Every line of metrics.jsonl is written with a single `write` of a complete line
and flushed, and `read_metrics` skips a torn final line, so a crash never leaves
a file that stops a reader.
"""

import json
import math
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from clu import metric_writers


def _to_float(v: Any) -> float | None:
    v = float(np.asarray(v))
    return v if math.isfinite(v) else None


class MetricLogger:
    """Writes {step, split, **metrics} records; only process 0 writes."""

    def __init__(self, workdir: str | Path, tensorboard: bool = True):
        self.workdir = Path(workdir)
        self.enabled = jax.process_index() == 0
        self._file = None
        self._tb = None
        if self.enabled:
            path = self.workdir / "metrics.jsonl"
            torn = path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115
            if torn:  # end a line cut by a crash so the records that follow stay whole
                self._file.write("\n")
            if tensorboard:
                self._tb = metric_writers.SummaryWriter(str(self.workdir))

    def log(self, step: int, split: str, metrics: dict[str, Any], **extra: Any) -> dict:
        """Appends one record; scalar metrics go to TensorBoard as `split/name`."""
        record = {"step": int(step), "split": split, **extra}
        scalars = {k: _to_float(v) for k, v in metrics.items() if np.ndim(v) == 0}
        record.update(scalars)
        if self.enabled:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            if self._tb is not None:
                self._tb.write_scalars(
                    int(step), {f"{split}/{k}": v for k, v in scalars.items() if v is not None}
                )
        return record

    def write_images(self, step: int, images: dict[str, np.ndarray]) -> None:
        if self.enabled and self._tb is not None:
            self._tb.write_images(int(step), {k: v[None] for k, v in images.items()})

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tb is not None:
                self._tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    """All complete records of a metrics.jsonl; a torn last line (crash mid-write) is skipped."""
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
