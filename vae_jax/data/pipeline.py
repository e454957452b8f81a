"""Deterministic, resumable batch streams: the batch at step t depends only on (seed, t).

Each process materializes only its own slice of the global batch; the loop
assembles the global, device-sharded array from the slices. A background
thread keeps a few batches ready so the input never stalls the step.
"""

import functools
import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np

from vae_jax.errors import ConfigError


@functools.lru_cache(maxsize=4)
def _cached_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    order.setflags(write=False)
    return order


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of one epoch: a function of (seed, epoch) only. Cached: every batch of
    an epoch reads it, and drawing a 60,000-permutation per batch cost more than a small step."""
    return _cached_permutation(num_examples, seed, epoch)


def global_batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of the global batch at `step`; epochs drop their last partial batch."""
    steps_per_epoch = num_examples // batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={batch_size} exceeds the {num_examples} training examples")
    epoch, pos = divmod(step, steps_per_epoch)
    return epoch_permutation(num_examples, seed, epoch)[pos * batch_size : (pos + 1) * batch_size]


def process_slice(global_batch: int, process_index: int, process_count: int) -> slice:
    """This process's rows of the global batch."""
    if global_batch % process_count:
        raise ConfigError(f"train.batch_size={global_batch} does not divide over {process_count} processes")
    per = global_batch // process_count
    return slice(process_index * per, (process_index + 1) * per)


def array_batch_fn(
    images: np.ndarray, batch_size: int, seed: int, process_index: int = 0, process_count: int = 1
) -> Callable[[int], np.ndarray]:
    """step -> this process's slice of the global batch drawn from an in-memory array."""
    rows = process_slice(batch_size, process_index, process_count)

    def batch_at(step: int) -> np.ndarray:
        return images[global_batch_indices(len(images), batch_size, seed, step)[rows]]

    return batch_at


def ground_truth_batch_fn(
    data, batch_size: int, seed: int, process_index: int = 0, process_count: int = 1
) -> Callable[[int], np.ndarray]:
    """step -> this process's slice of a batch of uniformly sampled ground-truth observations."""
    rows = process_slice(batch_size, process_index, process_count)

    def batch_at(step: int) -> np.ndarray:
        rng = np.random.default_rng([seed, step])
        factors = data.sample_factors(batch_size, rng)[rows]
        return data.sample_observations_from_factors(factors, rng)

    return batch_at


PREFETCH_DEPTH = 4  # batches the prefetch thread keeps ready
JOIN_SECONDS = 30.0  # how long closing a prefetch stream waits for its thread's item in hand


def prefetch(
    batch_at: Callable[[int], np.ndarray],
    start_step: int,
    depth: int = PREFETCH_DEPTH,
    transform: Callable | None = None,
) -> Iterator:
    """Yields batch_at(start_step), batch_at(start_step + 1), ... computed in a background thread.

    `transform` (e.g. the host-to-device transfer) is applied in that thread too, so
    the training loop only dispatches steps.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        step = start_step
        while not stop.is_set():
            try:
                item = batch_at(step)
                if transform is not None:
                    item = transform(item)
            except Exception as e:  # Surface producer errors in the consumer.
                q.put(e)
                return
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            step += 1

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        # Wait for the item in hand: a daemon thread still inside XLA when the interpreter exits
        # is ended mid-call, which aborts the process ("terminate called ... exception not rethrown").
        thread.join(timeout=JOIN_SECONDS)
