"""Device-sharded batches: on several devices ``propagate`` (and the VirtualChip through it) split the batch
over ``jax.devices()`` and return what one device returns. Several CPU devices are made in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``; this process (one device) computes the reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import sys
import jax
import numpy as np
jax.config.update("jax_enable_x64", True)
from tapmesh import circuits
from tapmesh.calibration import AsBuilt, Noise, VirtualChip

def results(everything):
    out = {"devices": np.array(len(jax.devices()))}
    top = circuits.rectangular(6)
    params = circuits.MeshParams.random(top, seed=3, delta_sigma=0.03, loss_db_sigma=0.1, tap_fraction=0.02)
    for batch in (5, 64):
        rng = np.random.default_rng(batch)
        x = rng.normal(size=(batch, 6)) + 1j * rng.normal(size=(batch, 6))
        out[f"y{batch}"] = y = circuits.propagate(top, params, x)
        out[f"shards{batch}"] = np.array(len(y.sharding.device_set))
        if everything:
            out[f"fields{batch}"] = circuits.propagate(top, params, x, taps=True)[1]
            out[f"back{batch}"] = circuits.propagate(top, params, x, taps="power", direction="backward")[1]
    out["power"] = circuits.propagate(top, params, x, taps="power")[1]
    if everything:
        out["single"] = circuits.propagate(top, params, x[0], taps="power")[1]
        out["sweep"] = circuits.propagate(top, params, x.astype(np.complex64), wl=np.linspace(1.5, 1.6, 3))
        loss = lambda p: jax.numpy.sum(circuits.propagate(top, p, x, taps="power")[1])
        out["grad"] = jax.grad(loss)(params).theta
    chip = VirtualChip(top, errors=AsBuilt.random(top, seed=2, crosstalk=0.01), noise=Noise.realistic(), seed=4)
    chip.set_voltages(np.full(chip.n_heaters, 1.1))
    chip.inject(x[:7])
    out["shards_chip"] = np.array(len(chip._field.sharding.device_set))
    out["chip_taps"] = chip.read_taps("forward")
    out["chip_out"] = chip.read_outputs_coherent()
    if everything:
        chip.inject(x[:3], side="output")
        out["chip_back"] = chip.read_taps("backward")
    return {name: np.asarray(value) for name, value in out.items()}

if __name__ == "__main__":
    np.savez(sys.argv[1], **results(sys.argv[2] == "all"))
'''


def _compare(tmp_path, everything: bool) -> None:
    script = tmp_path / "sharded.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    which = "all" if everything else "quick"
    subprocess.run([sys.executable, str(script), str(tmp_path / "two.npz"), which], env=env, check=True, timeout=600)
    two = dict(np.load(tmp_path / "two.npz"))
    namespace = {}
    exec(compile(SCRIPT, str(script), "exec"), namespace)  # the same computations here, on one device
    one = namespace["results"](everything)
    assert int(one["devices"]) == 1 and int(two["devices"]) == 2
    assert int(two["shards64"]) == 2 and int(one["shards64"]) == 1  # the batch really was split
    assert int(two["shards_chip"]) == 2
    assert set(one) == set(two)
    for name in one:
        if name == "devices" or name.startswith("shards"):
            continue
        np.testing.assert_allclose(two[name], one[name], rtol=1e-12, atol=1e-13, err_msg=name)


def test_two_devices_give_the_single_device_result(tmp_path):
    """Composed forward, tap powers and the VirtualChip's tap frames and coherent outputs."""
    _compare(tmp_path, everything=False)


@pytest.mark.slow
def test_two_devices_every_path(tmp_path):
    """Also tap fields, backward light, one vector, a wavelength sweep, gradients, backward chip frames."""
    _compare(tmp_path, everything=True)
