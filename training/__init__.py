"""training: photonic networks of meshes and their gradient methods (autodiff, in situ, analog, two-pass)."""
