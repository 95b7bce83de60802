"""Command-line interface: a thin Typer layer over the library (each module registers its commands)."""

from tfbench.cli import (  # noqa: F401  (each module registers its commands)
    ablate,
    compare,
    data,
    data_prepare,
    models,
    probe,
    report,
    run,
    score,
    stability,
    synth,
    train,
    weights,
)
from tfbench.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `tfbench` script and of `python -m tfbench`."""
    app()
