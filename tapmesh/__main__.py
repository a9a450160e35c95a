from tapmesh.cli import app

app(prog_name="tapmesh")
