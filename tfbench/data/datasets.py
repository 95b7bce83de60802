"""The dataset registry: how LRS2, LRS3, LRW, HDTF, a plain folder and the synthetic data lay out their clips.

Each dataset is one small class in `DATASETS` that knows two things: which clip ids a split lists
(`listing`) and where a clip id's mp4 lives (`clip_path`). Everything else, forming `Sample`s under the
reconstruction or the cross-pair protocol, sorting, `--limit`, `--shard` and checking that files exist,
is shared code in `tfbench.data.loading`. Listings never skip a file they cannot find: missing files are
reported (`check_dataset`) or raised (`load_samples`), never dropped. Third-party datasets register
through the `tfbench.datasets` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tfbench.data.sample import MetaValue
from tfbench.data.splits import DatasetError, clip_key, read_split_list
from tfbench.registry import Registry


@dataclass(frozen=True)
class Clip:
    """One clip a split lists: its id within the dataset, its mp4, identity reference and ground truth."""

    key: str
    path: Path
    reference: Path
    ground_truth: Path | None
    metadata: Mapping[str, MetaValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Listing:
    """The clip ids of one split, and where they came from (shown by `data check`)."""

    keys: list[str]
    source: str


def _mp4_keys(folder: Path, pattern: str = "**/*.mp4") -> list[str]:
    """Clip ids (relative paths without ".mp4") of the mp4 files under `folder`, sorted; hidden files
    (such as the temporary names `media.write_video` renames from) are not clips."""
    found = (p.relative_to(folder) for p in folder.glob(pattern) if p.is_file())
    return sorted(clip_key(p.as_posix()) for p in found if not any(part.startswith(".") for part in p.parts))


class Dataset(ABC):
    """A dataset root on disk. Subclasses set `name`, `splits` (None: any split name, a label only)
    and `pairs_entry` (the weights-registry entry of its published cross-pair list), and implement
    `listing` and `clip_path`."""

    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...] | None] = ("test",)
    pairs_entry: ClassVar[str | None] = None
    takes_reference: ClassVar[bool] = False

    def __init__(self, root: Path, split_file: Path | None = None, reference: Path | None = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            what = "is not a directory" if self.root.exists() else "does not exist"
            raise DatasetError(f"{self.name}: dataset root {self.root} {what}")
        if reference is not None and not self.takes_reference:
            raise DatasetError(f"{self.name}: a reference directory is only taken by the folder dataset")
        self.split_file = None if split_file is None else Path(split_file).expanduser()
        self.reference = None if reference is None else Path(reference).expanduser()
        if self.reference is not None and not self.reference.is_dir():
            raise DatasetError(f"{self.name}: reference directory {self.reference} does not exist")

    def check_split(self, split: str) -> None:
        """Reject a split this dataset does not have, naming the ones it has."""
        if self.splits is not None and split not in self.splits:
            raise DatasetError(f"{self.name}: unknown split {split!r} (known: {', '.join(self.splits)})")

    @abstractmethod
    def listing(self, split: str) -> Listing:
        """The clip ids `split` lists, in any order (callers sort)."""

    @abstractmethod
    def clip_path(self, key: str, split: str) -> Path:
        """Where the mp4 of clip `key` of `split` is (whether or not it exists)."""

    def clip(self, key: str, split: str) -> Clip:
        """Clip `key` under the reconstruction protocol: the clip is its own reference and ground truth."""
        path = self.clip_path(key, split)
        return Clip(key, path, path, path)

    def _split_list(self, split: str, default: Path | None) -> Listing:
        """The user's `--split-file`, else `default` (a dataset's own list file), which must exist."""
        path = self.split_file or default
        if path is None:
            raise DatasetError(f"{self.name}: split {split!r} needs a list file (pass --split-file)")
        if not path.is_file():
            if self.split_file is not None:
                raise DatasetError(f"{self.name}: --split-file {path}: no such file")
            raise DatasetError(
                f"{self.name}: split list {path} not found; put the dataset's {split} list there "
                f"or pass --split-file"
            )
        return Listing(read_split_list(path), f"split list {path}")


DATASETS: Registry[type[Dataset]] = Registry("dataset", entry_point_group="tfbench.datasets")


@DATASETS.register("lrs2")
class Lrs2(Dataset):
    """LRS2 (mvlrs_v1): `ROOT/main/<speaker>/<clip>.mp4` (`pretrain/` for the pretrain split), split lists
    `ROOT/<split>.txt` as released (test.txt lines carry a NF/MV flag after the id). ROOT may also be the
    folder that holds `mvlrs_v1/`."""

    name = "lrs2"
    splits = ("test", "val", "train", "pretrain")
    pairs_entry = "lrs2_pairs"

    @property
    def data_dir(self) -> Path:
        nested = self.root / "mvlrs_v1"
        if not (self.root / "main").is_dir() and (nested / "main").is_dir():
            return nested
        return self.root

    def listing(self, split: str) -> Listing:
        default = self.root / f"{split}.txt"
        if not default.is_file() and (self.data_dir / f"{split}.txt").is_file():
            default = self.data_dir / f"{split}.txt"
        folder = self.data_dir / ("pretrain" if split == "pretrain" else "main")
        if not folder.is_dir():
            raise DatasetError(f"lrs2: {folder} not found; ROOT must be the LRS2 folder holding main/")
        return self._split_list(split, default)

    def clip_path(self, key: str, split: str) -> Path:
        return self.data_dir / ("pretrain" if split == "pretrain" else "main") / f"{key}.mp4"


@DATASETS.register("lrs3")
class Lrs3(Dataset):
    """LRS3-TED: `ROOT/<split>/<speaker>/<clip>.mp4`; a split is its folder, or the `--split-file` list."""

    name = "lrs3"
    splits = ("test", "trainval", "pretrain")
    pairs_entry = "lrs3_pairs"

    def listing(self, split: str) -> Listing:
        if self.split_file is not None:
            return self._split_list(split, None)
        folder = self.root / split
        if not folder.is_dir():
            raise DatasetError(f"lrs3: {folder} not found; ROOT must be the LRS3 folder holding {split}/")
        return Listing(_mp4_keys(folder, "*/*.mp4"), f"folder {folder}")

    def clip_path(self, key: str, split: str) -> Path:
        return self.root / split / f"{key}.mp4"


@DATASETS.register("lrw")
class Lrw(Dataset):
    """LRW (lipread_mp4): `ROOT/<WORD>/<split>/<WORD>_<nnnnn>.mp4`; clip ids are `<WORD>_<nnnnn>` as in
    Wav2Lip's pair list; a split is every word's `<split>/` folder, or the `--split-file` list."""

    name = "lrw"
    splits = ("test", "val", "train")
    pairs_entry = "lrw_pairs"

    def listing(self, split: str) -> Listing:
        if self.split_file is not None:
            listing = self._split_list(split, None)
            return Listing([key.rsplit("/", 1)[-1] for key in listing.keys], listing.source)
        keys = _mp4_keys(self.root, f"*/{split}/*.mp4")
        if not keys:
            raise DatasetError(f"lrw: no {self.root}/<WORD>/{split}/*.mp4 found; ROOT must be lipread_mp4/")
        return Listing([key.rsplit("/", 1)[-1] for key in keys], f"folders {self.root}/*/{split}")

    def clip_path(self, key: str, split: str) -> Path:
        word = key.rsplit("_", 1)[0]
        if not word or word == key:
            raise DatasetError(f"lrw: clip id {key!r} is not of the form WORD_00001")
        return self.root / word / split / f"{key}.mp4"


@DATASETS.register("hdtf")
class Hdtf(Dataset):
    """HDTF: `ROOT/<name>.mp4`. HDTF has no official split; the list is, in order of precedence, the
    `--split-file`, `ROOT/<split>.txt`, or (documented default) every mp4 directly in ROOT, sorted."""

    name = "hdtf"
    splits = None

    def listing(self, split: str) -> Listing:
        default = self.root / f"{split}.txt"
        if self.split_file is not None or default.is_file():
            return self._split_list(split, default)
        keys = _mp4_keys(self.root, "*.mp4")
        if not keys:
            raise DatasetError(f"hdtf: no mp4 files in {self.root} and no {default.name} list")
        return Listing(keys, f"all mp4 files in {self.root}")

    def clip_path(self, key: str, split: str) -> Path:
        return self.root / f"{key}.mp4"


@DATASETS.register("folder")
class Folder(Dataset):
    """Any directory of mp4 files, searched recursively; clip ids are relative paths without ".mp4".

    With a reference directory (`--reference GT_DIR`), each video is paired with the file of the same
    relative path there: that file is its ground truth and identity reference. A video without a
    partner, or a partner without a video, is a missing file, never a skipped one.
    """

    name = "folder"
    splits = None
    takes_reference = True

    def listing(self, split: str) -> Listing:
        if self.split_file is not None:
            return self._split_list(split, None)
        keys = set(_mp4_keys(self.root))
        source = f"mp4 files under {self.root}"
        if self.reference is not None:
            keys |= set(_mp4_keys(self.reference))
            source += f" and {self.reference}"
        if not keys:
            raise DatasetError(f"folder: no mp4 files under {self.root}")
        return Listing(sorted(keys), source)

    def clip_path(self, key: str, split: str) -> Path:
        return self.root / f"{key}.mp4"

    def clip(self, key: str, split: str) -> Clip:
        path = self.clip_path(key, split)
        if self.reference is None:
            return Clip(key, path, path, None)
        partner = self.reference / f"{key}.mp4"
        return Clip(key, path, partner, partner)


@DATASETS.register("synthetic", aliases=("demo",))
class Synthetic(Dataset):
    """The output of `tfbench synth` (`tfbench.data.synthetic.write_dataset`): the layout named in
    `ROOT/manifest.csv` (lrs2, lrs3 or hdtf), its `ROOT/test.txt`, and each clip's manifest row (the
    planted audio-video offset `offset_frames`, speaker, length) as sample metadata."""

    name = "synthetic"
    splits = ("test",)
    _META: ClassVar[tuple[str, ...]] = (
        "offset_frames",
        "speaker",
        "layout",
        "n_frames",
        "fps",
        "seconds",
        "seed",
    )

    def __init__(self, root: Path, split_file: Path | None = None, reference: Path | None = None) -> None:
        super().__init__(root, split_file, reference)
        from tfbench.data.synthetic import read_manifest

        rows = read_manifest(self.root)
        if not rows:
            raise DatasetError(
                f"synthetic: {self.root / 'manifest.csv'} is missing or empty; run `tfbench synth`"
            )
        layouts = {row.layout for row in rows}
        if len(layouts) != 1:
            raise DatasetError(f"synthetic: {self.root / 'manifest.csv'} mixes layouts {sorted(layouts)}")
        self.layout = DATASETS.get(layouts.pop())(self.root, split_file)
        self._rows = {(self.root / row.path): row for row in rows}

    def listing(self, split: str) -> Listing:
        default = self.root / "test.txt"
        if self.split_file is None and not default.is_file():
            raise DatasetError(
                f"synthetic: {default} not found; the generator did not finish (rerun it to resume)"
            )
        return self._split_list(split, default)

    def clip_path(self, key: str, split: str) -> Path:
        return self.layout.clip_path(key, split)

    def clip(self, key: str, split: str) -> Clip:
        path = self.clip_path(key, split)
        row = self._rows.get(path)
        if row is None:  # the generator writes a clip's row before test.txt, so this is a foreign list
            raise DatasetError(f"synthetic: clip {key!r} has no row in {self.root / 'manifest.csv'}")
        return Clip(key, path, path, path, {name: getattr(row, name) for name in self._META})


def open_dataset(
    dataset: str, root: str | Path, split_file: str | Path | None = None, reference: str | Path | None = None
) -> Dataset:
    """The registered dataset `dataset` (or an alias) at `root`; an unknown name gets a did-you-mean error."""
    cls = DATASETS.get(dataset)
    return cls(
        Path(root),
        split_file=None if split_file is None else Path(split_file),
        reference=None if reference is None else Path(reference),
    )
