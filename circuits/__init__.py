"""circuits: mesh topology, SAX component models and reference circuits, and the batched JAX mesh engine."""
