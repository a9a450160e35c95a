"""pcells: gdsfactory cells of tapped MZI meshes."""
