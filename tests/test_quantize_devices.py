"""Every new quantizer option trains to the same parameters on 1 and on 8 host devices."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT, device_count_flags
from tests.quantize_worker import OPTIONS


@pytest.mark.slow
def test_quantizer_options_same_parameters_on_one_and_eight_devices(tmp_path):
    env = dict(os.environ, XLA_FLAGS=device_count_flags(8), JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    out = tmp_path / "out.npz"
    subprocess.run([sys.executable, str(ROOT / "tests/quantize_worker.py"), str(out)], env=env, check=True)
    result = dict(np.load(out))
    for name in OPTIONS:
        one = {k.split("/", 2)[2]: v for k, v in result.items() if k.startswith(f"{name}/1/")}
        eight = {k.split("/", 2)[2]: v for k, v in result.items() if k.startswith(f"{name}/8/")}
        assert one and one.keys() == eight.keys(), name
        if "kmeans" in name:  # the k-means initialisation ran (on the global batch) on both
            assert all(v for k, v in one.items() if k.endswith("['done']")), name
        for k in one:
            np.testing.assert_allclose(eight[k], one[k], rtol=1e-5, atol=1e-6, err_msg=f"{name} {k}")
