"""A procedural sequence dataset: sums of sinusoids of several frequencies, [T, 1] per example.

Each sequence is x_t = sum_j a_j sin(2 pi f_j t / T + phi_j) (+ small noise), with
`num_waves` components whose frequency, amplitude and phase are drawn per
example; deterministic given (seed, step), so it needs no files and resumes exactly.
"""

import numpy as np


class Sines:
    """Multi-frequency sine sequences [T, 1] in roughly [-1, 1]."""

    name = "sines"

    def __init__(self, length: int = 64, num_waves: int = 3, max_frequency: float = 6.0, noise: float = 0.02):
        self.length, self.num_waves, self.max_frequency, self.noise = length, num_waves, max_frequency, noise

    @property
    def observation_shape(self) -> tuple[int, int]:
        return (self.length, 1)

    def sample(self, num: int, rng: np.random.Generator) -> np.ndarray:
        t = np.arange(self.length) / self.length
        freq = rng.uniform(1.0, self.max_frequency, (num, self.num_waves, 1))
        amp = rng.uniform(0.2, 1.0, (num, self.num_waves, 1)) / self.num_waves
        phase = rng.uniform(0, 2 * np.pi, (num, self.num_waves, 1))
        x = np.sum(amp * np.sin(2 * np.pi * freq * t + phase), axis=1)  # [num, T]
        x = x + self.noise * rng.normal(size=x.shape)
        return x[..., None].astype(np.float32)

    def batch_fn(self, batch_size: int, seed: int, process_index: int = 0, process_count: int = 1):
        """step -> this process's rows of the global batch."""
        from vae_jax.data.pipeline import process_slice

        rows = process_slice(batch_size, process_index, process_count)
        return lambda step: self.sample(batch_size, np.random.default_rng([seed, step]))[rows]
