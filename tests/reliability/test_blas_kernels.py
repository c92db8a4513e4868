"""Bit reproducibility holds for a fixed BLAS kernel: the caveat in docs/guarantees.md.

OpenBLAS built with DYNAMIC_ARCH (NumPy's wheels) picks a kernel for the CPU at
start-up; ``OPENBLAS_CORETYPE`` overrides the choice. Kernels sum in different
orders, so the same training run gives other last bits under another kernel
(or another BLAS, or another thread count). This test shows both halves of the
documented promise: the same kernel gives the same bits in two processes;
another kernel gives other bits that agree to float32 rounding.
"""

import io
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

JOB = """
import hashlib, numpy as np, fnn
from fnn import optim
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 20)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
net = fnn.init([fnn.Dense(32), fnn.ReLU(), fnn.Dense(2)], (20,), key=0)
out, _, _ = fnn.fit(net, optim.adam(1e-2), fnn.losses.sparse_softmax_cross_entropy, (x, y),
                    epochs=3, key=0, batch_size=16, progress=False)
np.save(__import__("sys").stdout.buffer, np.concatenate([a.ravel() for a in fnn.tree.leaves(out)]))
"""


def _dynamic_openblas() -> bool:
    config = getattr(np.__config__, "CONFIG", None)
    try:
        blas = config["Build Dependencies"]["blas"]
    except (TypeError, KeyError):
        return False
    return "openblas" in blas.get("name", "") and "DYNAMIC_ARCH" in blas.get(
        "openblas configuration", ""
    )


def _avx2() -> bool:
    try:
        return " avx2 " in Path("/proc/cpuinfo").read_text().replace("\n", " ")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not (_dynamic_openblas() and platform.machine() in ("x86_64", "AMD64") and _avx2()),
    reason="needs NumPy on OpenBLAS with DYNAMIC_ARCH on an x86-64 CPU with AVX2",
)


def _train(coretype: str) -> np.ndarray:
    env = dict(os.environ, OPENBLAS_CORETYPE=coretype, OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", JOB], env=env, capture_output=True, check=True,
                         timeout=120)
    return np.load(io.BytesIO(out.stdout))


def test_bits_are_reproducible_for_a_fixed_blas_kernel_only():
    """Two processes on the Haswell kernel agree bit for bit; the Prescott kernel (SSE3)
    gives different bits for the same run, equal to float32 rounding."""
    haswell, again, prescott = _train("Haswell"), _train("Haswell"), _train("Prescott")
    assert haswell.tobytes() == again.tobytes()
    assert haswell.tobytes() != prescott.tobytes()
    np.testing.assert_allclose(haswell, prescott, rtol=1e-4, atol=1e-5)
