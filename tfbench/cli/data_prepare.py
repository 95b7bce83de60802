"""`tfbench data prepare`: fill the crop cache for a dataset split ahead of a run (resumable).

Every distinct video a split's samples read as target, identity reference or ground truth goes through
the face pipeline once; finished entries stay in the cache, so an interrupted prepare continues where it
stopped and a second one does no detection at all. The summary says how many were computed, how many
were already cached, and which clips were skipped and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tfbench.cli.app import console, options, progress, resolve_device
from tfbench.cli.data import data_app
from tfbench.errors import MediaError

if TYPE_CHECKING:
    from tfbench.data.crop_cache import CropCache
    from tfbench.data.faces import FaceSettings
    from tfbench.data.sample import Sample

_PRESET_FOR_CROP = {"224": "syncnet_pipeline", "96": "wav2lip"}


def _videos(samples: list[Sample]) -> list[Path]:
    """The distinct face videos of `samples` (target, reference, ground truth), in sample order."""
    seen: dict[Path, None] = {}
    for sample in samples:
        for role, path in sample.files().items():
            if role != "audio":
                seen.setdefault(Path(path), None)
    return list(seen)


@data_app.command("prepare")
def prepare(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="lrs2, lrs3, lrw, hdtf, folder, synthetic/demo.")
    ],
    root: Annotated[Path, typer.Option("--root", help="The dataset's root folder.")],
    detector: Annotated[str, typer.Option(help="Face detector: s3fd, s3fd_fan, dlib or none.")] = "s3fd",
    crop: Annotated[
        str, typer.Option(help="224 (syncnet_python's crop, for LSE) or 96 (Wav2Lip's).")
    ] = "224",
    preset: Annotated[
        str | None,
        typer.Option(help="Face settings preset (default: syncnet_pipeline for 224, wav2lip for 96)."),
    ] = None,
    min_track: Annotated[
        int | None, typer.Option(help="Override the preset's minimum track length (detections).")
    ] = None,
    split: Annotated[str, typer.Option(help="Split to prepare.")] = "test",
    split_file: Annotated[
        Path | None, typer.Option(help="A list of clip ids instead of the split's own.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N samples (sorted by id).")] = None,
    shard: Annotated[str | None, typer.Option(help="Only shard i/n of the samples.")] = None,
    landmarks: Annotated[
        bool, typer.Option("--landmarks", help="Also store 68 dlib landmarks per crop.")
    ] = False,
    weights: Annotated[
        list[str] | None, typer.Option("--weights", help="NAME=PATH for a weights file kept elsewhere.")
    ] = None,
    show: Annotated[int, typer.Option(help="Skipped clips to list.")] = 20,
) -> None:
    """Detect, track and crop the faces of a split's videos into the crop cache (exit 1: unreadable files)."""
    from tfbench.data.crop_cache import CropCache
    from tfbench.data.faces import preset as face_preset
    from tfbench.data.loading import load_samples
    from tfbench.weights import parse_overrides

    overrides = parse_overrides(weights or [])
    changes: dict[str, object] = {"detector": detector, "crop": crop}
    if min_track is not None:
        changes["min_track"] = min_track
    settings = face_preset(preset or _PRESET_FOR_CROP.get(crop, "syncnet_pipeline"), **changes)
    samples = load_samples(
        dataset, root, split, limit=limit, shard=shard, split_file=split_file, weights=overrides
    )
    videos = _videos(samples)
    cache = CropCache(weights=overrides, device=resolve_device(options().device))
    skipped: list[tuple[Path, str]] = []
    failed: list[tuple[Path, str]] = []
    with progress() as bar:
        task = bar.add_task(
            f"faces {dataset} {split} ({settings.detector}, {settings.crop} px)", total=len(videos)
        )
        for path in videos:
            try:
                crops = cache.get_or_compute(path, settings, landmarks=landmarks)
            except MediaError as exc:  # an unreadable file: reported, not cached, retried next time
                failed.append((path, str(exc)))
            else:
                if crops.skip_reason is not None:
                    skipped.append((path, crops.skip_reason))
            bar.advance(task)
    console.print(_summary(f"{dataset} {split}", len(videos), cache, len(skipped), len(failed), settings))
    for title, items in (
        ("skipped clips (cached with their reason)", skipped),
        ("unreadable videos", failed),
    ):
        if items:
            console.print(_listing(title, items, root, show))
    if failed:
        raise typer.Exit(code=1)


def _listing(title: str, items: list[tuple[Path, str]], root: Path, show: int) -> Table:
    table = Table(title=title)
    table.add_column("video", overflow="fold")
    table.add_column("reason", overflow="fold")
    for path, reason in items[:show]:
        table.add_row(str(path.relative_to(root) if path.is_relative_to(root) else path), reason)
    if len(items) > show:
        table.caption = f"... and {len(items) - show} more (--show N lists more)"
    return table


def _summary(
    title: str, n: int, cache: CropCache, skipped: int, failed: int, settings: FaceSettings
) -> Table:
    table = Table(title=f"tfbench data prepare: {title}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in (
        ("videos", n),
        ("computed", cache.misses),
        ("already cached", cache.hits),
        ("recomputed (damaged entries)", cache.recovered),
        ("skipped (no usable face)", skipped),
        ("unreadable (not cached)", failed),
        ("settings", f"detector {settings.detector}, crop {settings.crop}, min_track {settings.min_track}"),
        ("cache", str(cache.root)),
    ):
        table.add_row(name, str(value))
    return table
