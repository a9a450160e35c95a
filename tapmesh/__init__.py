"""tapmesh: the command-line interface and the end-to-end flow."""
