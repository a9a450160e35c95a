import os

import jax
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
