"""The `seqshare` admin CLI (Typer): one module per noun (`db`, `lims`, `share`, `audit`, `runs`, `purge`),
the root app and the error handling in `main`. The console script is `seqshare.cli:run`.

`seqshare download` (the scientists' command, `cli/download.py`) starts without importing the admin
commands and their database stack (half a second of CPU per start): `app` and `main` are loaded when first
used, and are what they were when this package imported them eagerly.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["app", "main", "run"]


def run() -> None:
    """Console-script entry point."""
    if sys.argv[1:2] == ["download"]:
        from seqshare.cli.download import run_alone

        sys.exit(run_alone(sys.argv[2:]))
    _admin().run()


def _admin() -> Any:
    return importlib.import_module("seqshare.cli.main")


class _Package(types.ModuleType):
    """`seqshare.cli.app` and `seqshare.cli.main` (the entry function) on first use. `main` stays the
    function even once the import system binds the submodule of the same name here."""

    @property
    def app(self) -> Any:
        return _admin().app

    @property
    def main(self) -> Any:
        return _admin().main

    @main.setter
    def main(self, value: Any) -> None:
        pass  # the submodule `seqshare.cli.main` being bound on its first import: the function stays


sys.modules[__name__].__class__ = _Package
