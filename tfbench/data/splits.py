"""Text formats around datasets: split lists, Wav2Lip cross-pair lists, and `--shard i/n` selections.

Pure parsing, no file-system walking: every malformed line is an error naming the file and line number,
so a list is never half-read without anyone noticing.

Pair lists: Wav2Lip's published LRS2/LRS3/LRW test lists hold two clip ids per line. Its generation
script reads them as `audio_src, video = line.split()` (evaluation/gen_videos_from_filelist.py), and the
second column of its lrs2.txt runs through the LRS2 test list in order while the first is random: the
first column is the driving audio, the second the target video. `PAIR_ORDERS` names both readings so a
list written the other way round can be used too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeAlias, TypeVar

from tfbench.errors import TfbenchError

T = TypeVar("T")

PairOrder: TypeAlias = Literal["audio-video", "video-audio"]
PAIR_ORDERS: Final[tuple[PairOrder, ...]] = ("audio-video", "video-audio")
DEFAULT_PAIR_ORDER: Final[PairOrder] = "audio-video"
"""Wav2Lip's reading of its own lists (see the module docstring)."""


class DatasetError(TfbenchError):
    """A dataset root, split list, pair list or selection that cannot be used; the message says why."""


def clip_key(token: str) -> str:
    """A clip id as written in a list, normalised: forward slashes, no leading "./", no ".mp4" suffix."""
    key = token.strip().replace("\\", "/").removeprefix("./")
    return key[: -len(".mp4")] if key.lower().endswith(".mp4") else key


def _content_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-blank, non-comment lines of a list file."""
    if not path.is_file():
        raise DatasetError(f"{what} {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{what} {path}: cannot be read ({exc})") from exc
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    return [(n, line) for n, line in lines if line and not line.startswith("#")]


def read_split_list(path: Path) -> list[str]:
    """The clip ids of a split list, in file order, duplicates removed.

    One clip per line; only the first whitespace-separated token is the id, so LRS2's test.txt
    ("6330311066473698535/00011 NF", the second token a NF/MV flag) and plain lists read alike.
    """
    keys = dict.fromkeys(clip_key(line.split()[0]) for _, line in _content_lines(path, "split list"))
    return list(keys)


@dataclass(frozen=True)
class PairLine:
    """One line of a cross-pair list: the target video's clip id, the driving audio's, and where it was."""

    video: str
    audio: str
    line: int


def read_pair_list(path: Path, order: PairOrder = DEFAULT_PAIR_ORDER) -> list[PairLine]:
    """The pairs of a Wav2Lip-style list, two clip ids per line, read in column order `order`."""
    if order not in PAIR_ORDERS:
        raise DatasetError(f"pair order {order!r}: expected one of {', '.join(PAIR_ORDERS)}")
    pairs = []
    for number, line in _content_lines(path, "pair list"):
        tokens = line.split()
        if len(tokens) != 2:
            raise DatasetError(f"pair list {path}, line {number}: expected two clip ids, got {line!r}")
        first, second = (clip_key(t) for t in tokens)
        video, audio = (second, first) if order == "audio-video" else (first, second)
        pairs.append(PairLine(video=video, audio=audio, line=number))
    if not pairs:
        raise DatasetError(f"pair list {path}: holds no pair")
    return pairs


@dataclass(frozen=True)
class Shard:
    """Part `index` (0-based) of `count` equal-as-possible parts of a sorted sample list."""

    index: int
    count: int

    def select(self, items: Sequence[T]) -> list[T]:
        """Round-robin: items index, index + count, ...; the shards are disjoint and together cover `items`.

        Round-robin rather than contiguous blocks because lists sorted by id are grouped by speaker, so
        blocks would give one process all of a long-clip speaker; shard sizes differ by at most one.
        """
        return list(items[self.index :: self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(spec: str | Shard | tuple[int, int]) -> Shard:
    """Read `--shard i/n` (i is 0-based, 0 <= i < n); a malformed spec is an error that shows the form."""
    if isinstance(spec, Shard):
        index, count = spec.index, spec.count
    elif isinstance(spec, tuple):
        index, count = spec
    else:
        head, sep, tail = spec.strip().partition("/")
        if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
            raise DatasetError(f"--shard {spec!r}: expected i/n with whole numbers, e.g. 0/4 (0-based index)")
        index, count = int(head), int(tail)
    if count < 1:
        raise DatasetError(f"--shard {index}/{count}: the number of shards must be at least 1")
    if not 0 <= index < count:
        raise DatasetError(f"--shard {index}/{count}: the index is 0-based and must be in 0..{count - 1}")
    return Shard(index, count)
