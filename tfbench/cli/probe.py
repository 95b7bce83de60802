"""`tfbench probe`: a table of the streams of media files, non-zero exit on any unreadable file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tfbench.cli.app import app, console, err_console
from tfbench.errors import MediaError


@app.command()
def probe(paths: Annotated[list[Path], typer.Argument(help="Video files to inspect.")]) -> None:
    """Show codecs, fps, frame counts, durations, audio and audio-video mismatch of video files."""
    from tfbench import media

    table = Table(title="tfbench probe")
    table.add_column("file", overflow="fold", min_width=24)
    for column in ("video", "fps", "frames", "seconds", "audio"):
        table.add_column(column)
    table.add_column("a-v (s)", justify="right")
    failures = 0
    for path in paths:
        try:
            info = media.probe(path)
        except MediaError as exc:
            failures += 1
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            continue
        mismatch = info.duration_mismatch
        audio = (
            "[yellow]none[/yellow]"
            if info.audio_codec is None
            else f"{info.audio_codec} {info.sample_rate}Hz {info.channels}ch"
        )
        table.add_row(
            str(path),
            f"{info.video_codec} {info.width}x{info.height}",
            f"{info.fps:g}",
            str(info.n_frames),
            f"{info.video_seconds:.2f}",
            audio,
            "-" if mismatch is None else f"{mismatch:+.3f}",
        )
    if table.row_count:
        console.print(table)
    if failures:
        raise typer.Exit(code=2)
