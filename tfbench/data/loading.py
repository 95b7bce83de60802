"""Turn a dataset split into `Sample`s (`load_samples`); check its files before a long run (`check_dataset`).

Both start from the same expected sample list, so `data check` reports exactly the files a run would
read. Order is by sample id; `--limit` and `--shard` select from that order, never by chance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeAlias, get_args

from tfbench.data.datasets import Dataset, open_dataset
from tfbench.data.sample import Sample
from tfbench.data.splits import (
    DEFAULT_PAIR_ORDER,
    PAIR_ORDERS,
    DatasetError,
    PairOrder,
    Shard,
    parse_shard,
    read_pair_list,
)
from tfbench.errors import MediaError

LoadProtocol: TypeAlias = Literal["reconstruction", "pairs"]
"""How samples are formed: each clip with its own audio, or the pairs of a cross-pair list ("dubbing")."""
LOAD_PROTOCOLS: Final[tuple[str, ...]] = get_args(LoadProtocol)


def _pair_samples(ds: Dataset, split: str, pairs_file: Path, pair_order: PairOrder) -> list[Sample]:
    """One dubbing sample per line of the pair list: video of clip A driven by the audio of clip B."""
    seen: Counter[str] = Counter()
    samples = []
    for pair in read_pair_list(pairs_file, pair_order):
        target = ds.clip(pair.video, split)
        base = f"{ds.name}/{pair.video}+{pair.audio}"
        seen[base] += 1  # a repeated line is kept, under a numbered id, not merged away
        meta = {**target.metadata, "video_clip": pair.video, "audio_clip": pair.audio, "pair_line": pair.line}
        samples.append(
            Sample(
                id=base if seen[base] == 1 else f"{base}#{seen[base]}",
                video=target.path,
                audio=ds.clip_path(pair.audio, split),
                reference=target.path,
                dataset=ds.name,
                split=split,
                protocol="dubbing",
                ground_truth=None,
                metadata=meta,
            )
        )
    return samples


@dataclass(frozen=True)
class Expected:
    """Every sample a split lists, sorted by id, whether or not its files exist, and the list's source."""

    dataset: str
    samples: list[Sample]
    source: str


def expected_samples(
    dataset: str,
    root: str | Path,
    split: str = "test",
    protocol: LoadProtocol = "reconstruction",
    pairs_file: str | Path | None = None,
    *,
    split_file: str | Path | None = None,
    reference: str | Path | None = None,
    pair_order: PairOrder = DEFAULT_PAIR_ORDER,
    weights: Mapping[str, Path] | None = None,
) -> Expected:
    """The samples of a split before any file is opened (the arguments are those of `load_samples`)."""
    if protocol not in LOAD_PROTOCOLS:
        raise DatasetError(f"protocol {protocol!r}: expected one of {', '.join(LOAD_PROTOCOLS)}")
    if pair_order not in PAIR_ORDERS:
        raise DatasetError(f"pair order {pair_order!r}: expected one of {', '.join(PAIR_ORDERS)}")
    ds = open_dataset(dataset, root, split_file, reference)
    ds.check_split(split)
    if protocol == "pairs":
        if split_file is not None:
            raise DatasetError("--split-file is not read under --protocol pairs: the pair list is the split")
        if pairs_file is None:
            if ds.pairs_entry is None:
                raise DatasetError(
                    f"{ds.name}: no published pair list; pass a pairs file (two clip ids a line)"
                )
            from tfbench.weights import resolve

            pairs_file = resolve(ds.pairs_entry, dict(weights) if weights else None)
        samples = _pair_samples(ds, split, Path(pairs_file), pair_order)
        source = f"pair list {pairs_file} ({pair_order})"
    else:
        if pairs_file is not None:
            raise DatasetError("a pairs file is only read under --protocol pairs")
        listing = ds.listing(split)
        clips = [ds.clip(key, split) for key in listing.keys]
        samples = [
            Sample(f"{ds.name}/{c.key}", c.path, c.path, c.reference, ds.name, split, "reconstruction",
                   c.ground_truth, c.metadata)
            for c in clips
        ]  # fmt: skip
        source = listing.source
    return Expected(ds.name, sorted(samples, key=lambda s: s.id), source)


def select(
    samples: list[Sample], limit: int | None = None, shard: str | Shard | tuple[int, int] | None = None
) -> list[Sample]:
    """`--limit N` (the first N of the sorted list), then `--shard i/n` of those: N processes running
    the same command with shards 0/n..n-1 together cover exactly what one process would."""
    if limit is not None:
        if limit < 0:
            raise DatasetError(f"--limit {limit}: must be 0 or more")
        samples = samples[:limit]
    return samples if shard is None else parse_shard(shard).select(samples)


def load_samples(
    dataset: str,
    root: str | Path,
    split: str = "test",
    protocol: LoadProtocol = "reconstruction",
    pairs_file: str | Path | None = None,
    limit: int | None = None,
    shard: str | Shard | tuple[int, int] | None = None,
    *,
    split_file: str | Path | None = None,
    reference: str | Path | None = None,
    pair_order: PairOrder = DEFAULT_PAIR_ORDER,
    weights: Mapping[str, Path] | None = None,
) -> list[Sample]:
    """The samples of `dataset`'s `split` at `root`, sorted by id, after `limit` and `shard`.

    `protocol="pairs"` reads a cross-pair list (`pairs_file`, or the dataset's published list through
    the weights registry, `weights` being `--weights NAME=PATH` overrides); `pair_order` says which
    column is the audio (Wav2Lip's lists: audio first). Every file of the selected samples must exist:
    a missing one raises `DatasetError` naming it (`check_dataset` lists them all).
    """
    expected = expected_samples(
        dataset, root, split, protocol, pairs_file,
        split_file=split_file, reference=reference, pair_order=pair_order, weights=weights,
    )  # fmt: skip
    samples = select(expected.samples, limit, shard)
    missing = sorted({path for s in samples for path in s.files().values() if not path.is_file()})
    if missing:
        shown = "; ".join(str(path) for path in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DatasetError(
            f"{dataset} {split}: {len(missing)} listed file(s) are missing: {shown}{more} "
            f"(`tfbench data check --dataset {dataset} --root {root}` lists them all)"
        )
    return samples


@dataclass(frozen=True)
class FileProblem:
    """A file the samples need that is missing or cannot be opened, how they use it, and why it fails."""

    path: Path
    roles: tuple[str, ...]
    first_sample: str
    n_samples: int
    reason: str


@dataclass(frozen=True)
class DatasetReport:
    """What `check_dataset` found: every distinct file the split's samples read, by outcome."""

    dataset: str
    root: Path
    split: str
    protocol: str
    source: str
    n_samples: int
    present: tuple[Path, ...]
    missing: tuple[FileProblem, ...]
    unreadable: tuple[FileProblem, ...]

    @property
    def n_files(self) -> int:
        return len(self.present) + len(self.missing) + len(self.unreadable)

    @property
    def ok(self) -> bool:
        """True when every file is present and readable: a run will not stop on a file."""
        return not self.missing and not self.unreadable


def _unreadable_reason(path: Path, needs_audio: bool, deep: bool) -> str | None:
    """Why `path` cannot serve its roles, or None. Cheap by default: open the container and look at its
    streams (what a truncated or corrupt mp4 fails); `deep` decodes every frame as well."""
    from tfbench import media

    try:
        if deep:
            has_audio = media.probe(path).audio_codec is not None
        else:
            media.video_fps(path)  # header only: a video stream with a frame rate
            has_audio = media.probe_has_audio(path) if needs_audio else True
    except MediaError as exc:
        return str(exc).removeprefix(f"{path}: ").replace(f": '{path}'", "")
    return None if has_audio or not needs_audio else "has no audio stream (it is used as driving audio)"


def check_dataset(
    dataset: str,
    root: str | Path,
    split: str = "test",
    protocol: LoadProtocol = "reconstruction",
    pairs_file: str | Path | None = None,
    *,
    split_file: str | Path | None = None,
    reference: str | Path | None = None,
    pair_order: PairOrder = DEFAULT_PAIR_ORDER,
    weights: Mapping[str, Path] | None = None,
    deep: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetReport:
    """Check every file the split's samples would read: present, missing, or unreadable.

    A missing root, split list or pair list still raises `DatasetError` (nothing can be listed then).
    `progress(done, total)` is called after each file.
    """
    expected = expected_samples(
        dataset, root, split, protocol, pairs_file,
        split_file=split_file, reference=reference, pair_order=pair_order, weights=weights,
    )  # fmt: skip
    uses: dict[Path, dict[str, None]] = {}
    users: dict[Path, list[str]] = {}
    for sample in expected.samples:
        for role, path in sample.files().items():
            uses.setdefault(path, {})[role] = None
            users.setdefault(path, []).append(sample.id)
    present: list[Path] = []
    missing: list[FileProblem] = []
    unreadable: list[FileProblem] = []
    for done, (path, roles) in enumerate(sorted(uses.items()), start=1):
        reason = "no such file" if not path.is_file() else _unreadable_reason(path, "audio" in roles, deep)
        if reason is None:
            present.append(path)
        else:
            ids = sorted(set(users[path]))
            found = FileProblem(path, tuple(roles), ids[0], len(ids), reason)
            (missing if not path.is_file() else unreadable).append(found)
        if progress is not None:
            progress(done, len(uses))
    return DatasetReport(
        dataset=expected.dataset,
        root=Path(root),
        split=split,
        protocol=protocol,
        source=expected.source,
        n_samples=len(expected.samples),
        present=tuple(present),
        missing=tuple(missing),
        unreadable=tuple(unreadable),
    )
