"""The `seqshare` admin CLI (Typer): one module per noun (`db`, `lims`, `share`, `audit`, `runs`, `purge`),
the root app and the error handling in `main`. The console script is `seqshare.cli:run`."""

from seqshare.cli.main import app, main, run

__all__ = ["app", "main", "run"]
