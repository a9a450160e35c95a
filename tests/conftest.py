import os

# Most of the default run's time is XLA compiling small programs once each, not running them: skip most
# of XLA's optimization passes (same results, e.g. the flow's numbers are identical; its CPU time drops
# 60 → 47 s). In this process (a pytest plugin may have imported jax already) and, through the
# environment, in the subprocesses the tests start (the CLI, notebooks, the bench emulator);
# `JAX_DISABLE_MOST_OPTIMIZATIONS=0 pytest` tests the optimized pipeline.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402

jax.config.update("jax_disable_most_optimizations", os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"].lower() in ("1", "true"))
from hypothesis import HealthCheck, settings

# Tests check physics to ~1e-10: run the engine in double precision unless a test asks for complex64.
jax.config.update("jax_enable_x64", True)

settings.register_profile(
    "tapmesh",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("ci", parent=settings.get_profile("tapmesh"), max_examples=15, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "tapmesh")
