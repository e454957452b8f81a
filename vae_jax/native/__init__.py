"""oneDNN convolution kernels for XLA:CPU, built from `onednn_conv.cc` on this machine.

`python -m vae_jax.native` compiles the handlers into `libvae_onednn.so` next to
this file (needs a C++17 compiler and oneDNN's headers and library: Debian's
`g++` and `libdnnl-dev`); `make venv` does it when they are there. `load()`
registers them with XLA once per process and says whether they are there; without
them `model.conv_impl='auto'` uses the matrix-product form of
`vae_jax.models.strided` instead.
"""

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("onednn_conv.cc")
LIBRARY = Path(__file__).with_name("libvae_onednn.so")
# FFI target name -> exported handler symbol.
TARGETS = {
    "vae_onednn_conv_fwd": "VaeConvFwd",
    "vae_onednn_conv_bwd_data": "VaeConvBwdData",
    "vae_onednn_conv_bwd_weights": "VaeConvBwdWeights",
}
_loaded: bool | None = None


def build(out: Path = LIBRARY) -> None:
    """Compiles the handlers; raises RuntimeError saying what is missing."""
    import jax.ffi

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found (install g++)")
    cmd = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", f"-I{jax.ffi.include_dir()}", str(SOURCE)]
    cmd += ["-o", str(out), "-ldnnl"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(
            f"{' '.join(cmd)} failed (is oneDNN installed? Debian: libdnnl-dev):\n{result.stderr}"
        )


def load() -> bool:
    """Registers the handlers with XLA:CPU (once); False when the library is not built."""
    global _loaded
    if _loaded is None:
        _loaded = False
        if LIBRARY.exists():
            import jax

            lib = ctypes.cdll.LoadLibrary(str(LIBRARY))
            for name, symbol in TARGETS.items():
                jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
            _loaded = True
    return _loaded


def main() -> int:
    try:
        build()
    except RuntimeError as e:
        print(f"vae_jax.native: oneDNN kernels not built: {e}", file=sys.stderr)
        return 1
    print(f"vae_jax.native: built {LIBRARY}")
    return 0
