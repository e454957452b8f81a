"""Keep freed heap memory in the process instead of returning it to the OS (glibc only).

XLA:CPU allocates each step's temporary buffers with malloc. glibc serves requests
above its mmap threshold (at most 32 MiB) with fresh mmap'd pages and unmaps them
on free, so every step page-faults its large buffers in again: a 33 MiB
intermediate of the dSprites decoder cost ~7 ms per step in faults alone, and the
whole beta-VAE step ran 99 -> 78 ms once freed memory was kept (measured in
benchmarks/step_time.py). We turn mmap allocation off and raise the trim
threshold, the runtime equivalent of MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...
Set VAE_JAX_KEEP_MALLOC=1 to leave the allocator as it is.
"""

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = False


def keep_freed_memory() -> bool:
    """Applies the settings once per process; True where they took effect (Linux with glibc)."""
    global _applied
    if _applied or os.environ.get("VAE_JAX_KEEP_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return _applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to do
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
