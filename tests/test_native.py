"""The oneDNN kernels (`model.conv_impl='onednn'`, 'auto' on CPU when built): built where CI requires
them, correct under every instruction set oneDNN can dispatch to on this CPU, clean under
AddressSanitizer, and guarded by the per-shape self-check.

tests/test_ops.py checks the layers against XLA's with the other forms; here whole-model train
steps run in subprocesses, since oneDNN reads ONEDNN_MAX_CPU_ISA once per process.
"""

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.models import ConvEncoder
from vae_jax.ops import matmul, native, onednn, resolve_impl

ROOT = Path(__file__).resolve().parent.parent
needs_kernels = pytest.mark.skipif(
    not onednn.available(), reason="oneDNN kernels not built (python -m vae_jax.ops.native)"
)

# oneDNN's ONEDNN_MAX_CPU_ISA names, the CPU flags each needs, and dnnl_cpu_isa_t's value for it.
ISAS = {
    "SSE41": ({"sse4_1"}, 0x1),
    "AVX": ({"avx"}, 0x3),
    "AVX2": ({"avx2"}, 0x7),
    "AVX512_CORE": ({"avx512f", "avx512bw", "avx512vl", "avx512dq"}, 0x27),
}


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


EMULATED = [isa for isa, (flags, _) in ISAS.items() if flags <= _cpu_flags()]


def _run(args, isa=None, timeout=600, **env):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", **env)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_kernels_are_built_where_required():
    """.ci/run sets VAE_JAX_REQUIRE_ONEDNN=1: a broken build fails CI instead of falling back."""
    if os.environ.get("VAE_JAX_REQUIRE_ONEDNN") == "1":
        assert onednn.available(), "the oneDNN kernels did not build: run `python -m vae_jax.ops.native`"
    assert resolve_impl("auto") == ("onednn" if onednn.available() else "matmul")


@needs_kernels
def test_kernels_use_the_pinned_onednn():
    """The kernels link the wheel's oneDNN (3.2), not whatever the Linux distribution ships."""
    _, lib = native.onednn_paths()
    dnnl = ctypes.CDLL(str(lib / "libdnnl.so.3"))
    dnnl.dnnl_version.restype = ctypes.POINTER(ctypes.c_int * 3)
    assert tuple(dnnl.dnnl_version().contents)[:2] == (3, 2)
    out = subprocess.run(["ldd", str(native.LIBRARY)], capture_output=True, text=True).stdout
    assert str(lib / "libdnnl.so.3") in out, out


@needs_kernels
@pytest.mark.parametrize("isa", EMULATED)
@pytest.mark.slow
def test_whole_model_steps_under_each_isa(isa):
    """beta-VAE, VQ-VAE and a 4-member vmapped sweep: oneDNN steps equal matrix-product steps
    with oneDNN capped at each instruction set this CPU has (the failure of whole-model steps
    under AVX2 went unseen by single-layer tests and by AVX-512 machines)."""
    code = (
        "import ctypes, runpy, sys; from vae_jax.ops import native; native.load(); "
        "_, lib = native.onednn_paths(); "
        "print('effective isa', ctypes.CDLL(str(lib / 'libdnnl.so.3')).dnnl_get_effective_cpu_isa()); "
        "sys.argv = ['isa_worker']; runpy.run_path('tests/isa_worker.py', run_name='__main__')"
    )
    result = _run(["-c", code], isa=isa)
    assert result.returncode == 0, (
        f"under ONEDNN_MAX_CPU_ISA={isa}:\n{result.stdout}\n{result.stderr[-3000:]}"
    )
    assert f"effective isa {ISAS[isa][1]}\n" in result.stdout, result.stdout
    for case in ("beta_vae", "vq_vae", "sweep_vmap_4"):
        assert f"{case}: max relative parameter difference" in result.stdout


@needs_kernels
@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to build the sanitized kernels")
@pytest.mark.slow
def test_kernels_are_clean_under_address_sanitizer(tmp_path):
    """Every layer shape of the conv models, forward and both gradients, through an ASan build,
    with oneDNN at this CPU's instruction set and capped at AVX2."""
    library = tmp_path / "libvae_onednn_asan.so"
    native.build(library, sanitize=True)
    runtime = [
        subprocess.run(["g++", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
        for name in ("libasan.so", "libstdc++.so")  # libstdc++ too: ASan must see its __cxa_throw
    ]
    preload = " ".join(os.path.realpath(p) for p in runtime)
    for isa in ("AVX2", None):
        if isa and isa not in EMULATED:
            continue
        result = _run(
            ["tests/asan_worker.py", str(library)], isa, LD_PRELOAD=preload, ASAN_OPTIONS="detect_leaks=0"
        )
        assert result.returncode == 0 and "AddressSanitizer" not in result.stderr, result.stderr[-3000:]
        assert "layer shapes agree" in result.stdout


@pytest.fixture
def fresh_self_check(monkeypatch):
    """A clean self-check record, restored afterwards."""
    monkeypatch.setattr(onednn, "_checked", set())
    monkeypatch.setattr(onednn, "_failure", None)


@needs_kernels
def test_self_check_runs_once_per_shape(fresh_self_check):
    x = jnp.zeros((3, 16, 16, 1))
    ConvEncoder(4, channels=(8, 8), dense=0, impl="auto").init(jax.random.key(0), x)
    assert onednn._checked == {
        ("conv_4x4_s2", (16, 16, 1), (4, 4, 1, 8)),
        ("conv_4x4_s2", (8, 8, 8), (4, 4, 8, 8)),
    }


@needs_kernels
@pytest.mark.parametrize("fault", ["mismatch", "error"])
def test_failed_self_check_warns_once_and_continues_on_matmul(fresh_self_check, monkeypatch, fault):
    def broken(x, kernel):
        if fault == "error":
            raise RuntimeError("injected kernel failure")
        return 1.5 * onednn.conv_4x4_s2(x, kernel)

    monkeypatch.setitem(onednn.FORMS, "conv_4x4_s2", broken)
    x = jax.random.normal(jax.random.key(0), (2, 16, 16, 1))
    encoder = {impl: ConvEncoder(4, channels=(8, 8), dense=0, impl=impl) for impl in ("auto", "matmul")}
    variables = encoder["matmul"].init(jax.random.key(1), x)
    with pytest.warns(RuntimeWarning, match="self-check") as record:
        y = encoder["auto"].apply(variables, x)
        encoder["auto"].apply(variables, x + 1)  # the second use does not warn again
    assert len(record) == 1
    assert ("injected kernel failure" if fault == "error" else "differs") in str(record[0].message)
    np.testing.assert_allclose(y, encoder["matmul"].apply(variables, x), rtol=1e-5, atol=1e-5)
    assert resolve_impl("auto") == "matmul"
    with pytest.raises(onednn.OneDNNCheckError, match="conv_impl='matmul'"):
        ConvEncoder(4, channels=(8, 8), dense=0, impl="onednn").apply(variables, x)


@needs_kernels
def test_self_check_compares_values_and_both_gradients(monkeypatch):
    """A kernel gradient that is wrong (the forward right) is caught."""

    @jax.custom_vjp
    def wrong_kernel_grad(x, k):
        return onednn.conv_4x4_s2(x, k)

    wrong_kernel_grad.defvjp(lambda x, k: (onednn.conv_4x4_s2(x, k), (x, k)), lambda r, g: (
        jax.vjp(matmul.conv_4x4_s2, *r)[1](g)[0], jnp.zeros_like(r[1])))  # fmt: skip
    monkeypatch.setitem(onednn.FORMS, "conv_4x4_s2", wrong_kernel_grad)
    assert "kernel gradient" in onednn.compare_with_matmul("conv_4x4_s2", (8, 8, 2), (4, 4, 2, 3))


@needs_kernels
def test_odd_sizes_and_other_dtypes_are_refused():
    with pytest.raises(ValueError, match="even height and width"):
        onednn.conv_4x4_s2(jnp.zeros((1, 7, 8, 2)), jnp.zeros((4, 4, 2, 3)))
    with pytest.raises(ValueError, match="float32.*conv_impl='matmul'"):
        onednn.conv_4x4_s2(jnp.zeros((1, 8, 8, 2), jnp.bfloat16), jnp.zeros((4, 4, 2, 3), jnp.bfloat16))


@needs_kernels
def test_vmap_over_models_matches_one_at_a_time():
    """Sweeps vmap the step over members; the FFI calls then run member by member."""
    xs = jax.random.normal(jax.random.key(0), (3, 2, 8, 8, 4))
    ks = jax.random.normal(jax.random.key(1), (3, 4, 4, 4, 6))
    kts = jax.random.normal(jax.random.key(2), (3, 4, 4, 6, 5))

    def loss(x, k, kt):
        return jnp.sum(onednn.conv_transpose_4x4_s2(onednn.conv_4x4_s2(x, k), kt) ** 2)

    grad = jax.grad(loss, argnums=(0, 1, 2))
    grads = jax.vmap(grad)(xs, ks, kts)
    for i in range(3):
        one = grad(xs[i], ks[i], kts[i])
        for a, b in zip(grads, one, strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-4)


def test_unbuilt_kernels_say_how_to_build(monkeypatch):
    monkeypatch.setattr(onednn, "built", lambda: False)
    with pytest.raises(ValueError, match="python -m vae_jax.ops.native"):
        resolve_impl("onednn")
    assert resolve_impl("auto") == ("matmul" if jax.default_backend() == "cpu" else "xla")
