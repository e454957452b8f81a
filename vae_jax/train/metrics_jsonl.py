"""metrics.jsonl as a clu `MetricWriter`: one JSON object per `{step, split}` event.

Every line is written with a single `write` of a complete line and flushed, and a file whose
last line was torn by a crash is ended with a newline before the next record, so readers
(`workdir.read_metrics`) never stop at a broken record.
"""

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from clu import metric_writers


def _json_value(v: Any) -> Any:
    """A scalar for JSON: ints stay ints, non-finite floats become null."""
    if isinstance(v, bool | int | str) or v is None:
        return v
    v = float(np.asarray(v))
    return v if math.isfinite(v) else None


class JsonlWriter(metric_writers.MetricWriter):
    """metrics.jsonl as a clu MetricWriter.

    `write_scalars(step, {"split/name": v})` appends one `{step, split, **fields, name: v}`
    record per split; `fields` are constant extra keys (a sweep member's index and values).
    Other kinds of summaries are not written here (TensorBoard and images/ hold them).
    """

    def __init__(self, path: str | Path | None, fields: Mapping[str, Any] | None = None, _file=None):
        self.fields = dict(fields or {})
        self._owner = _file is None
        self._file = _file if _file is not None else self._open(Path(path))

    @staticmethod
    def _open(path: Path):
        torn = path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
        file = open(path, "a", encoding="utf-8")  # noqa: SIM115
        if torn:  # end a line cut by a crash so the records that follow stay whole
            file.write("\n")
        return file

    def with_fields(self, **fields: Any) -> "JsonlWriter":
        """A writer to the same file that adds `fields` to every record."""
        return JsonlWriter(None, {**self.fields, **fields}, _file=self._file)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        records: dict[str, dict] = {}
        for key, value in scalars.items():
            split, _, name = key.partition("/")
            records.setdefault(split, {"step": int(step), "split": split, **self.fields})[name] = value
        for record in records.values():
            line = json.dumps({k: _json_value(v) for k, v in record.items()}) + "\n"
            self._file.write(line)
        self.flush()

    def write_summaries(self, step, values, metadata=None):
        del step, values, metadata

    def write_images(self, step, images):
        del step, images

    def write_videos(self, step, videos):
        del step, videos

    def write_audios(self, step, audios, *, sample_rate):
        del step, audios, sample_rate

    def write_texts(self, step, texts):
        del step, texts

    def write_histograms(self, step, arrays, num_buckets=None):
        del step, arrays, num_buckets

    def write_hparams(self, hparams):
        del hparams

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._owner:
            self._file.close()
