"""Every layer shape of the dSprites beta-VAE and the 28x28 conv VAE through an AddressSanitizer
build of the oneDNN kernels, forward and both gradients, against the matrix-product form.

  LD_PRELOAD=$(g++ -print-file-name=libasan.so) python tests/asan_worker.py LIBRARY

Run by tests/test_native.py; ASan aborts the process on any invalid read or write.
"""

import sys
from pathlib import Path

from vae_jax.ops import native, onednn

# (kind, per-example input shape, kernel shape): the encoders' convolutions and the decoders'
# transposed convolutions of beta_vae.py (64x64, 32-32-64-64) and conv_ae.py / vae.py (28x28, 32-64).
SHAPES = [
    ("conv_4x4_s2", (64, 64, 1), (4, 4, 1, 32)),
    ("conv_4x4_s2", (32, 32, 32), (4, 4, 32, 32)),
    ("conv_4x4_s2", (16, 16, 32), (4, 4, 32, 64)),
    ("conv_4x4_s2", (8, 8, 64), (4, 4, 64, 64)),
    ("conv_transpose_4x4_s2", (4, 4, 64), (4, 4, 64, 64)),
    ("conv_transpose_4x4_s2", (8, 8, 64), (4, 4, 64, 32)),
    ("conv_transpose_4x4_s2", (16, 16, 32), (4, 4, 32, 32)),
    ("conv_transpose_4x4_s2", (32, 32, 32), (4, 4, 32, 1)),
    ("conv_4x4_s2", (28, 28, 1), (4, 4, 1, 32)),
    ("conv_4x4_s2", (14, 14, 32), (4, 4, 32, 64)),
    ("conv_transpose_4x4_s2", (7, 7, 64), (4, 4, 64, 32)),
    ("conv_transpose_4x4_s2", (14, 14, 32), (4, 4, 32, 1)),
]


def main(library: str) -> int:
    assert native.load(Path(library)), f"could not load {library}"
    for kind, x_shape, kernel_shape in SHAPES:
        reason = onednn.compare_with_matmul(kind, x_shape, kernel_shape)
        assert reason is None, f"{kind} {x_shape} {kernel_shape}: {reason}"
    print(f"{len(SHAPES)} layer shapes agree", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
