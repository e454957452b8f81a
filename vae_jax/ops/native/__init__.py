"""oneDNN convolution kernels for XLA:CPU, built from `onednn_conv.cc` on this machine.

`python -m vae_jax.ops.native` compiles the handlers into `libvae_onednn.so` next
to this file, against the oneDNN of the pinned `onednn-devel-cpu-gomp` wheel
(the `native` extra: `pip install -e '.[native]'`), never the Linux
distribution's, so every machine runs the same oneDNN; it needs a C++17 compiler
(g++). `make venv` does both. `load()` registers the handlers with XLA once per
process and says whether they are there; without them `model.conv_impl='auto'`
uses the matrix-product form of `vae_jax.ops.matmul`. `sanitize=True` builds an
AddressSanitizer copy for the tests (tests/test_native.py).
"""

import ctypes
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("onednn_conv.cc")
LIBRARY = Path(__file__).with_name("libvae_onednn.so")
ONEDNN = "onednn-devel-cpu-gomp"  # the wheel with the headers; it pins the runtime wheel
ONEDNN_VERSION = "2023.2.0"  # oneDNN 3.2, CPU only, GNU OpenMP threads
# FFI target name -> exported handler symbol.
TARGETS = {
    "vae_onednn_conv_fwd": "VaeConvFwd",
    "vae_onednn_conv_bwd_data": "VaeConvBwdData",
    "vae_onednn_conv_bwd_weights": "VaeConvBwdWeights",
}
_loaded: bool | None = None


def onednn_paths() -> tuple[Path, Path]:
    """(include dir, lib dir) of the installed oneDNN wheel; RuntimeError saying how to install it."""
    hint = f"pip install {ONEDNN}=={ONEDNN_VERSION} (or: pip install -e '.[native]')"
    try:
        version = importlib.metadata.version(ONEDNN)
        header = next(
            f for f in importlib.metadata.files(ONEDNN) if f.name == "dnnl.hpp" and "oneapi" in str(f)
        )
        runtime = importlib.metadata.files("onednn-cpu-gomp")
        lib = next(f for f in runtime if f.name == "libdnnl.so.3")
    except (importlib.metadata.PackageNotFoundError, StopIteration, TypeError):
        raise RuntimeError(f"oneDNN is not installed: {hint}") from None
    if version != ONEDNN_VERSION:
        raise RuntimeError(
            f"{ONEDNN} {version} is installed, the kernels are built for {ONEDNN_VERSION}: {hint}"
        )
    include = Path(header.locate()).resolve().parent.parent.parent  # .../include/oneapi/dnnl/dnnl.hpp
    return include, Path(lib.locate()).resolve().parent


def build(out: Path = LIBRARY, sanitize: bool = False) -> None:
    """Compiles the handlers; raises RuntimeError saying what is missing."""
    import jax.ffi

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found (install g++)")
    include, lib = onednn_paths()
    cmd = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", f"-I{include}", f"-I{jax.ffi.include_dir()}"]
    if sanitize:
        cmd += ["-g", "-fsanitize=address", "-fno-omit-frame-pointer"]
    cmd += [str(SOURCE), "-o", str(out), f"-L{lib}", f"-Wl,-rpath,{lib}", "-ldnnl"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr}")


def load(library: Path = LIBRARY) -> bool:
    """Registers the handlers with XLA:CPU (once); False when the library is not built."""
    global _loaded
    if _loaded is None:
        _loaded = False
        if library.exists():
            import jax

            lib = ctypes.cdll.LoadLibrary(str(library))
            for name, symbol in TARGETS.items():
                jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
            _loaded = True
    return _loaded


def main() -> int:
    try:
        build()
    except RuntimeError as e:
        print(f"vae_jax.ops.native: oneDNN kernels not built: {e}", file=sys.stderr)
        return 1
    print(f"vae_jax.ops.native: built {LIBRARY}")
    return 0
