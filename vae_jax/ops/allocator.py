"""Keep freed heap memory in the process instead of returning it to the OS (glibc only).

XLA:CPU allocates every call's temporary buffers with malloc and frees them at the
end of the call. With glibc's defaults the large ones come back to the OS (mmap'd
chunks, per-thread arenas that shrink), so the next call page-faults its buffers
in again, a cost paid per call (a lax.scan of steps, which allocates once, avoids it).

`keep_freed_memory()` therefore sets one malloc arena, no mmap allocations and
no trimming (mallopt; the runtime form of MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=...): 0 faults per step afterwards. Large steps gain
(the 64x64 beta-VAE); small 28x28 steps, which allocate little, can lose a few
percent to the single arena (docs/performance.md has the measurements). A library
must not change its host process unasked, so nothing calls it on import: the CLI
(`experiments/run.py`), the benchmarks and the test suite opt in, and
VAE_JAX_MALLOC=system opts them out.
"""

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
_applied = False


def keep_freed_memory() -> bool:
    """Applies the settings once per process; True where they took effect (Linux with glibc)."""
    global _applied
    wanted = os.environ.get("VAE_JAX_MALLOC", "keep") != "system"
    if _applied or not wanted or not sys.platform.startswith("linux"):
        return _applied
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to do
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = all(mallopt(option, value) for option, value in _SETTINGS)
    return _applied
