"""The Typer app, its global options, and the helpers every command shares (device, console, progress)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from typer.core import TyperGroup

from tfbench import __version__
from tfbench.errors import TfbenchError


@dataclass
class GlobalOptions:
    """Options given before the command name; read by commands through `options()`."""

    device: str = "auto"
    debug: bool = False


_options = GlobalOptions()


class _ErrorReportingGroup(TyperGroup):
    """The top-level command group: a `TfbenchError` from any command becomes one red line and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TfbenchError as exc:
            if _options.debug:
                raise
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    name="tfbench",
    cls=_ErrorReportingGroup,
    help="Generate and evaluate audio-driven talking-face videos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def options() -> GlobalOptions:
    """The global options of this invocation."""
    return _options


_DEVICE_SPEC = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_spec(spec: str) -> str:
    """Reject a malformed `--device` at start-up, without importing torch."""
    if not _DEVICE_SPEC.fullmatch(spec):
        raise TfbenchError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")
    return spec


def resolve_device(spec: str) -> str:
    """Turn `auto|cpu|cuda|cuda:N` into a concrete torch device string; the one place this is decided."""
    import torch

    check_device_spec(spec)
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise TfbenchError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
    index = spec.partition(":")[2]
    if index and int(index) >= torch.cuda.device_count():
        raise TfbenchError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return spec


def progress() -> Progress:
    """A rich progress bar for loops over files (drawn on stderr, so stdout stays clean for tables/JSON)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def _show_version(value: bool) -> None:
    if value:
        console.print(f"tfbench {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Generate and evaluate audio-driven talking-face videos."""
    _options.debug = debug
    _options.device = check_device_spec(device)
