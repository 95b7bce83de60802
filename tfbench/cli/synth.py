"""`tfbench synth`: write a synthetic talking-face dataset in the LRS2, LRS3 or HDTF folder layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tfbench.cli.app import app, console, progress


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (created; an interrupted run resumes).")],
    layout: Annotated[str, typer.Option(help="Folder layout: lrs2, lrs3 or hdtf.")] = "lrs2",
    speakers: Annotated[int, typer.Option(help="Number of speakers (identities).")] = 4,
    clips: Annotated[int, typer.Option(help="Clips per speaker.")] = 3,
    seconds: Annotated[float, typer.Option(help="Duration of each clip in seconds.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
) -> None:
    """Write synthetic talking-face videos with known audio-video offsets (LRS2/LRS3/HDTF layouts)."""
    from tfbench.data.synthetic import SynthConfig, write_dataset

    config = SynthConfig(layout=layout, speakers=speakers, clips=clips, seconds=seconds, seed=seed)
    with progress() as bar:
        task = bar.add_task(f"synth {layout}", total=config.speakers * config.clips)
        rows = write_dataset(out, config, progress=lambda done, total: bar.update(task, completed=done))
    shifted = sum(1 for row in rows if row.offset_frames != 0)
    console.print(
        f"wrote {len(rows)} clips ({config.speakers} speakers x {config.clips}, {layout}, "
        f"{config.n_frames / config.fps:g} s each, {shifted} with a planted offset) to {out}; "
        f"list {out / 'test.txt'}, manifest {out / 'manifest.csv'}",
        highlight=False,
        soft_wrap=True,
    )
