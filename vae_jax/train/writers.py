"""The two metric files of a workdir: metrics.jsonl and TensorBoard's event file.

`JsonlWriter`: one JSON object per `{step, split}` event. Every line is written with a single
`write` of a complete line and flushed, and a file whose last line was torn by a crash is ended
with a newline before the next record, so readers (`workdir.read_metrics`) never stop at a broken
record.

`EventWriter`: scalars and PNG images as TensorBoard `Event` protos, framed by tensorboard's own
`RecordWriter`. Neither imports TensorFlow (clu's and `tf.summary`'s writers do, which would
add TensorFlow's import to every process that trains).
"""

import io
import itertools
import json
import math
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from vae_jax import viz


def _json_value(v: Any) -> Any:
    """A scalar for JSON: ints stay ints, non-finite floats become null."""
    if isinstance(v, bool | int | str) or v is None:
        return v
    v = float(np.asarray(v))
    return v if math.isfinite(v) else None


class JsonlWriter:
    """metrics.jsonl.

    `write_scalars(step, {"split/name": v})` appends one `{step, split, **fields, name: v}`
    record per split; `fields` are constant extra keys (a sweep member's index and values).
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
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._owner:
            self._file.close()


_file_index = itertools.count()  # two writers of one process never share a file name


class EventWriter:
    """A TensorBoard event file in logdir (`events.out.tfevents.<time>.<host>.<pid>.<n>`).

    Scalars are `simple_value`s and images PNG-encoded `Summary.Image`s, which TensorBoard's
    scalar and image dashboards read. Records are flushed after each call (a run logs every
    `log_every` steps, so this is cheap) and so survive a crash.
    """

    def __init__(self, logdir: str | Path):
        host, pid = socket.gethostname(), os.getpid()
        name = f"events.out.tfevents.{int(time.time())}.{host}.{pid}.{next(_file_index)}"
        self._records = RecordWriter(open(Path(logdir) / name, "wb"))  # noqa: SIM115
        self._write(event_pb2.Event(file_version="brain.Event:2"))

    def _write(self, event: event_pb2.Event, step: int = 0) -> None:
        event.step, event.wall_time = int(step), time.time()
        self._records.write(event.SerializeToString())
        self._records.flush()

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
        self._write(event_pb2.Event(summary=summary_pb2.Summary(value=values)), step)

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """images: name -> [H, W, C] in [0, 1], C = 1 or 3."""
        values = []
        for tag, image in images.items():
            png = io.BytesIO()
            viz.save_image(png, image)
            encoded = summary_pb2.Summary.Image(
                height=image.shape[0], width=image.shape[1], colorspace=4, encoded_image_string=png.getvalue()
            )  # colorspace 4: RGBA, what imsave writes
            values.append(summary_pb2.Summary.Value(tag=tag, image=encoded))
        self._write(event_pb2.Event(summary=summary_pb2.Summary(value=values)), step)

    def close(self) -> None:
        self._records.close()
