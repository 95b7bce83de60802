"""Dataset registry on synthetic data in each layout: splits, cross pairs, shards, limits and `data check`."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tfbench.data.datasets import DATASETS
from tfbench.data.loading import LoadProtocol, check_dataset, load_samples
from tfbench.data.sample import Sample
from tfbench.data.splits import DatasetError, Shard, parse_shard
from tfbench.data.synthetic import ManifestRow, SynthConfig, write_dataset
from tfbench.registry import UnknownNameError


@dataclass(frozen=True)
class Generated:
    root: Path
    rows: list[ManifestRow]


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Generated]:
    """2 speakers x 2 clips x 1 s in the lrs2, lrs3 and hdtf layouts (hdtf: every clip has an offset)."""
    out = {}
    for layout in ("lrs2", "lrs3", "hdtf"):
        root = tmp_path_factory.mktemp(layout)
        config = SynthConfig(
            layout, speakers=2, clips=2, seconds=1.0, seed=3, offset_fraction=float(layout == "hdtf")
        )
        out[layout] = Generated(root, write_dataset(root, config))
    return out


@pytest.fixture(scope="session")
def lrw(synth: dict[str, Generated], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LRW's layout, ROOT/<WORD>/<split>/<WORD>_<nnnnn>.mp4, from copies of the synthetic clips."""
    root = tmp_path_factory.mktemp("lipread_mp4")
    clips = sorted(synth["lrs2"].root.glob("main/*/*.mp4"))
    for (word, number), clip in zip(
        [("ABOUT", 1), ("ABOUT", 2), ("BRING", 1), ("BRING", 7)], clips, strict=True
    ):
        (root / word / "test").mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / word / "test" / f"{word}_{number:05d}.mp4")
    (root / "ABOUT" / "val").mkdir()
    shutil.copy(clips[0], root / "ABOUT" / "val" / "ABOUT_00001.mp4")  # another split: never listed as test
    return root


def _keys(gen: Generated, folder: str = "") -> list[str]:
    """Clip ids the generator wrote, relative to `folder` and without ".mp4"."""
    return sorted(row.path.removeprefix(folder).removesuffix(".mp4") for row in gen.rows)


def _assert_reconstruction(samples: list[Sample], dataset: str, expected: dict[str, Path]) -> None:
    assert [s.id for s in samples] == sorted(expected)
    for s in samples:
        assert s.video == s.audio == s.reference == s.ground_truth == expected[s.id]
        assert s.video.is_file() and (s.protocol, s.dataset, s.split) == ("reconstruction", dataset, "test")


def test_registry_names() -> None:
    assert DATASETS.names() == ["folder", "hdtf", "lrs2", "lrs3", "lrw", "synthetic"]
    assert DATASETS.get("demo") is DATASETS.get("synthetic")


def test_lrs2_test_list_with_and_without_flags(synth: dict[str, Generated], tmp_path: Path) -> None:
    gen = synth["lrs2"]
    assert all(line.endswith(" NF") for line in (gen.root / "test.txt").read_text().splitlines())
    expected = {f"lrs2/{k}": gen.root / "main" / f"{k}.mp4" for k in _keys(gen, "main/")}
    samples = load_samples("lrs2", gen.root)
    _assert_reconstruction(samples, "lrs2", expected)
    assert samples[0].id.count("/") == 2 and len(samples[0].id.split("/")[1]) == 19  # lrs2/<speaker>/<clip>
    plain = tmp_path / "plain.txt"
    plain.write_text("# one id a line, no flag\n\n" + "".join(f"{k}\n" for k in _keys(gen, "main/")))
    assert load_samples("lrs2", gen.root, split_file=plain) == samples


def test_lrs3_folder_or_list(synth: dict[str, Generated], tmp_path: Path) -> None:
    gen = synth["lrs3"]
    keys = _keys(gen, "test/")
    samples = load_samples("lrs3", gen.root)
    _assert_reconstruction(samples, "lrs3", {f"lrs3/{k}": gen.root / "test" / f"{k}.mp4" for k in keys})
    subset = tmp_path / "subset.txt"
    subset.write_text(f"{keys[2]}\n{keys[0]}.mp4\n")
    assert [s.id for s in load_samples("lrs3", gen.root, split_file=subset)] == [
        f"lrs3/{keys[0]}",
        f"lrs3/{keys[2]}",
    ]


def test_hdtf_list_or_all_files(synth: dict[str, Generated], tmp_path: Path) -> None:
    gen = synth["hdtf"]
    names = _keys(gen)
    _assert_reconstruction(
        load_samples("hdtf", gen.root), "hdtf", {f"hdtf/{n}": gen.root / f"{n}.mp4" for n in names}
    )
    bare = tmp_path / "hdtf"  # no list file: the documented default is every mp4 in ROOT
    bare.mkdir()
    for name in names:
        (bare / f"{name}.mp4").symlink_to(gen.root / f"{name}.mp4")
    (bare / f".{names[0]}.123.tmp.mp4").write_bytes(b"")  # a half-written temporary is not a clip
    assert [s.id for s in load_samples("hdtf", bare)] == [f"hdtf/{n}" for n in names]
    chosen = tmp_path / "mine.txt"
    chosen.write_text(f"{names[1]}\n")
    assert [s.id for s in load_samples("hdtf", bare, split_file=chosen)] == [f"hdtf/{names[1]}"]


def test_lrw_layout(lrw: Path) -> None:
    samples = load_samples("lrw", lrw)
    ids = ["lrw/ABOUT_00001", "lrw/ABOUT_00002", "lrw/BRING_00001", "lrw/BRING_00007"]
    _assert_reconstruction(samples, "lrw", {i: lrw / i[4:9] / "test" / f"{i[4:]}.mp4" for i in ids})
    assert [s.id for s in load_samples("lrw", lrw, split="val")] == ["lrw/ABOUT_00001"]


@pytest.mark.parametrize("name", ["synthetic", "demo"])
def test_synthetic_exposes_planted_offsets(synth: dict[str, Generated], name: str) -> None:
    gen = synth["hdtf"]
    samples = load_samples(name, gen.root)
    offsets = {f"synthetic/{r.path.removesuffix('.mp4')}": r.offset_frames for r in gen.rows}
    assert {s.id: s.metadata["offset_frames"] for s in samples} == offsets
    assert any(offsets.values()) and all(s.dataset == "synthetic" for s in samples)
    lrs2 = load_samples(name, synth["lrs2"].root)  # the layout comes from the manifest
    assert [s.video for s in lrs2] == [s.video for s in load_samples("lrs2", synth["lrs2"].root)]


def test_folder_with_reference_pairs_by_relative_path(synth: dict[str, Generated], tmp_path: Path) -> None:
    gt = synth["lrs3"].root / "test"
    generated = tmp_path / "generated"
    shutil.copytree(gt, generated)
    samples = load_samples("folder", generated, reference=gt)
    assert len(samples) == 4
    for s in samples:
        relative = s.video.relative_to(generated)
        assert s.ground_truth == s.reference == gt / relative and s.audio == s.video
        assert s.id == f"folder/{relative.with_suffix('').as_posix()}"
    assert all(s.ground_truth is None for s in load_samples("folder", generated))
    lost = samples[1].video
    lost.unlink()
    shutil.copy(samples[0].video, generated / "extra.mp4")  # a generated video without a GT partner
    report = check_dataset("folder", generated, reference=gt)
    assert sorted(p.path for p in report.missing) == sorted([lost, gt / "extra.mp4"])
    with pytest.raises(DatasetError, match="2 listed file"):
        load_samples("folder", generated, reference=gt)


PairFile = tuple[Path, list[tuple[str, str]]]


@pytest.fixture
def pair_file(synth: dict[str, Generated], tmp_path: Path) -> PairFile:
    """A Wav2Lip-style list, "audio video" per line as its script reads it, with one line repeated."""
    keys = _keys(synth["lrs2"], "main/")
    pairs = [(keys[(i + 1) % 4], keys[i]) for i in range(4)] + [(keys[3], keys[1]), (keys[0], keys[2])]
    pairs.append(pairs[0])
    path = tmp_path / "pairs.txt"
    path.write_text("".join(f"{audio} {video}\n" for audio, video in pairs))
    return path, pairs


def test_pairs_protocol_drives_video_a_with_audio_b(synth: dict[str, Generated], pair_file: PairFile) -> None:
    root, (path, pairs) = synth["lrs2"].root, pair_file
    samples = load_samples("lrs2", root, protocol="pairs", pairs_file=path)
    assert len(samples) == len(pairs) and len({s.id for s in samples}) == len(pairs)
    by_line = {s.metadata["pair_line"]: s for s in samples}
    for line, (audio, video) in enumerate(pairs, start=1):
        s = by_line[line]
        assert s.video == s.reference == root / "main" / f"{video}.mp4"
        assert s.audio == root / "main" / f"{audio}.mp4"
        assert s.protocol == "dubbing" and s.ground_truth is None and not s.has_ground_truth
    assert by_line[len(pairs)].id == by_line[1].id + "#2"
    assert pickle.loads(pickle.dumps(samples)) == samples and len(set(samples)) == len(samples)
    swapped = load_samples("lrs2", root, protocol="pairs", pairs_file=path, pair_order="video-audio")
    assert {(s.video, s.audio) for s in swapped} == {(s.audio, s.video) for s in samples}
    via_registry = load_samples("lrs2", root, protocol="pairs", weights={"lrs2_pairs": path})
    assert via_registry == samples


def test_pairs_errors(synth: dict[str, Generated], lrw: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("ABOUT_00001 BRING_00001\nABOUT_00002\n")
    with pytest.raises(DatasetError, match="line 2: expected two clip ids"):
        load_samples("lrw", lrw, protocol="pairs", pairs_file=bad)
    gone = tmp_path / "gone.txt"
    gone.write_text("ABOUT_00001 BRING_00001\nABOUT_00099 BRING_00007\n")
    assert len(check_dataset("lrw", lrw, protocol="pairs", pairs_file=gone).missing) == 1
    with pytest.raises(DatasetError, match="ABOUT_00099"):
        load_samples("lrw", lrw, protocol="pairs", pairs_file=gone)
    [one] = load_samples("lrw", lrw, protocol="pairs", pairs_file=gone, limit=1)
    assert (one.video, one.audio) == (lrw / "BRING/test/BRING_00001.mp4", lrw / "ABOUT/test/ABOUT_00001.mp4")
    with pytest.raises(DatasetError, match="no published pair list"):
        load_samples("hdtf", synth["hdtf"].root, protocol="pairs")


@pytest.mark.parametrize("size", [4, 7])
def test_shards_are_disjoint_and_cover_the_split(
    synth: dict[str, Generated], pair_file: PairFile, size: int
) -> None:
    root = synth["lrs2"].root
    protocol: LoadProtocol = "reconstruction" if size == 4 else "pairs"
    pairs = None if size == 4 else pair_file[0]
    full = [s.id for s in load_samples("lrs2", root, protocol=protocol, pairs_file=pairs)]
    assert len(full) == size
    parts = [
        [s.id for s in load_samples("lrs2", root, protocol=protocol, pairs_file=pairs, shard=f"{i}/3")]
        for i in range(3)
    ]
    joined = [i for part in parts for i in part]
    assert sorted(joined) == sorted(full) and len(set(joined)) == size
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    limited = [
        load_samples("lrs2", root, protocol=protocol, pairs_file=pairs, limit=3, shard=(i, 3))
        for i in range(3)
    ]
    assert sorted(s.id for part in limited for s in part) == full[:3]


def test_limit_takes_the_first_ids(synth: dict[str, Generated]) -> None:
    root = synth["lrs3"].root
    full = load_samples("lrs3", root)
    assert load_samples("lrs3", root, limit=2) == full[:2]
    assert load_samples("lrs3", root, limit=10) == full and load_samples("lrs3", root, limit=0) == []
    with pytest.raises(DatasetError, match="--limit"):
        load_samples("lrs3", root, limit=-1)


@pytest.mark.parametrize("spec", ["3/3", "1", "a/b", "0/0", "-1/2", "1/2/3", ""])
def test_bad_shard_is_a_clear_error(spec: str) -> None:
    with pytest.raises(DatasetError, match=r"--shard .*(i/n|0-based|at least 1)"):
        parse_shard(spec)
    assert parse_shard(" 2/5 ") == Shard(2, 5) and str(Shard(2, 5)) == "2/5"


def test_unknown_names_and_missing_inputs(synth: dict[str, Generated], tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'lrs2'"):
        load_samples("lsr2", synth["lrs2"].root)
    with pytest.raises(DatasetError, match="does not exist"):
        load_samples("lrs2", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        load_samples("lrs2", synth["lrs2"].root, split="dev")
    with pytest.raises(DatasetError, match="protocol 'dub'"):
        load_samples("lrs2", synth["lrs2"].root, protocol="dub")  # type: ignore[arg-type]
    no_list = tmp_path / "lrs2"
    shutil.copytree(synth["lrs2"].root / "main", no_list / "main")
    with pytest.raises(DatasetError, match="--split-file"):
        load_samples("lrs2", no_list)
    listed = _keys(synth["lrs2"], "main/")
    (no_list / "test.txt").write_text("".join(f"{k} NF\n" for k in listed))
    (no_list / "main" / f"{listed[1]}.mp4").unlink()
    with pytest.raises(DatasetError, match=rf"1 listed file.*{listed[1]}\.mp4"):
        load_samples("lrs2", no_list)
    with pytest.raises(ValueError, match="no ground truth"):
        Sample("x", Path("a.mp4"), Path("b.mp4"), Path("a.mp4"), "lrs2", "test", "dubbing", Path("a.mp4"))


Invoke = Callable[..., Result]


@pytest.fixture(scope="module")
def invoke() -> Invoke:
    import tfbench.cli.data  # noqa: F401  (registers `data` on the app; tfbench.cli wires it later)
    from tfbench.cli.app import app

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, ["data", "check", *args])

    return run


def test_data_check_cli(synth: dict[str, Generated], tmp_path: Path, invoke: Invoke) -> None:
    root = tmp_path / "lrs2"
    shutil.copytree(synth["lrs2"].root, root)
    result = invoke("--dataset", "lrs2", "--root", str(root))
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "4 files" in result.output
    clips = sorted(root.glob("main/*/*.mp4"))
    clips[0].unlink()
    data = clips[1].read_bytes()
    clips[1].write_bytes(data[: len(data) // 2])  # truncated: the mp4 index at the end is gone
    report = check_dataset("lrs2", root)
    assert [p.path for p in report.missing] == [clips[0]] and [p.path for p in report.unreadable] == [
        clips[1]
    ]
    assert sorted(report.present) == clips[2:] and not report.ok and report.n_samples == 4
    result = invoke("--dataset", "lrs2", "--root", str(root), "--show", "5")
    assert result.exit_code == 1
    assert "missing" in result.output and "unreadable" in result.output and "no such file" in result.output
    result = invoke("--dataset", "lsr2", "--root", str(root))
    assert result.exit_code == 2 and "did you mean 'lrs2'" in result.output
