"""The `command` model: a third-party script run per clip, whose failures become rows, never a crash."""

from __future__ import annotations

import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from tfbench import media
from tfbench.baselines.command import CommandModel, CommandOptions
from tfbench.benchmark.distributed import DistributedContext
from tfbench.benchmark.options import RunOptions
from tfbench.benchmark.runner import Runner
from tfbench.data import load_samples
from tfbench.data.synthetic import SynthConfig, write_dataset
from tfbench.errors import TfbenchError
from tfbench.models.protocol import GenerationRequest, load_model, parse_model_options

PY = shlex.quote(sys.executable)

# A stand-in for a third-party inference script. It uses PyAV directly: importing tfbench in a child process
# costs seconds (torch), PyAV alone a fraction of one.
TOOL = """
import sys

video, out, sample_id, fail_id, short_id = sys.argv[1:6]
if sample_id == fail_id:
    print("tool: no face found in", video, file=sys.stderr)
    sys.exit(1)
import av
import numpy as np

with av.open(video) as container:
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
if sample_id == short_id:
    frames = frames[:-3]
with av.open(out, "w") as container:
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    for image in frames:
        brighter = np.clip(image.astype(np.int16) + 10, 0, 255).astype(np.uint8)
        container.mux(stream.encode(av.VideoFrame.from_ndarray(brighter, format="rgb24")))
    container.mux(stream.encode(None))
print("tool: wrote", len(frames), "frames")
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, SynthConfig(layout="lrs2", speakers=1, clips=3, seconds=1.0, seed=3))
    return root


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _request(n: int = 12, size: int = 96, sample_id: str = "clip", offset: int = 0) -> GenerationRequest:
    faces = np.stack([np.full((size, size, 3), (offset + 20 * i) % 256, np.uint8) for i in range(n)])
    reference = np.full((1, size, size, 3), 200, np.uint8)
    return GenerationRequest(sample_id, faces, reference, np.zeros(n * 640, np.float32))


def _model(**options: str) -> CommandModel:
    model = load_model("command", options=options)
    assert isinstance(model, CommandModel)
    return model


def test_command_through_the_runner_failures_are_rows(dataset: Path, tmp_path: Path) -> None:
    tool = tmp_path / "tool.py"
    tool.write_text(TOOL)
    ids = [s.id for s in load_samples("synthetic", dataset, "test")]
    template = f"{PY} {tool} {{video}} {{out}} {{sample_id}} {ids[1]} {ids[2]}"
    options = RunOptions(
        model="command",
        dataset="synthetic",
        root=dataset,
        metrics=("psnr",),
        out=tmp_path / "run",
        detector="none",
        model_options={"template": template, "log_dir": str(tmp_path / "logs"), "timeout": "120"},
        workers=1,
    )
    store = Runner(options, DistributedContext()).run()
    table = store.write_results().set_index("sample_id")
    assert list(table.index) == ids

    ok = table.loc[ids[0]]
    assert ok.status == "ok" and 20 < ok.psnr < 40  # brightened by 10 grey levels: about 28 dB
    video = media.read_video(store.run_dir / str(ok.output))
    assert video.n_frames == ok.n_frames == 25

    failed = table.loc[ids[1]]
    assert failed.status == "failed"
    assert "exited with code 1" in failed.reason and "no face found" in failed.reason
    assert ids[1] in failed.reason and str(tool) in failed.reason
    log = Path(failed.reason.rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "logs" and "no face found" in log.read_text()

    short = table.loc[ids[2]]
    assert short.status == "failed" and "produced 22 frames for a 25-frame clip" in short.reason
    assert ids[2] in short.reason and str(tool) in short.reason and "(log: " in short.reason

    config = yaml.safe_load((store.run_dir / "config.yaml").read_text())
    assert config["model_options"]["template"] == template and config["model_options"]["timeout"] == "120.0"
    assert store.read_summary()["metrics"]["psnr"]["n"] == 1


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    model = _model(template=f"sh -c 'sleep 60 & echo $! > {pidfile}; wait'", timeout="1")
    started = time.perf_counter()
    with pytest.raises(TfbenchError, match=r"clip: command .* timed out after 1 s \(log: "):
        model.generate(_request())
    assert time.perf_counter() - started < 20
    pid = int(pidfile.read_text())
    status = Path(f"/proc/{pid}/status")
    if status.parent.parent.is_dir():  # Linux: the background child is gone (or a zombie awaiting its reaper)
        for _ in range(50):
            if not status.exists() or "State:\tZ" in status.read_text():
                break
            time.sleep(0.1)
        assert not status.exists() or "State:\tZ" in status.read_text()
    else:  # pragma: no cover
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_missing_output_and_unstartable_command(tmp_path: Path) -> None:
    with pytest.raises(TfbenchError, match=r"clip: command .* exited 0 but wrote no .*\.mp4 \(log: "):
        _model(template=f"{PY} -c pass").generate(_request())
    with pytest.raises(TfbenchError, match=r"could not start: .*no-such-tool.*\(log: "):
        _model(template=str(tmp_path / "no-such-tool") + " {video}").generate(_request())


def test_output_is_resized_and_padded_as_allowed(tmp_path: Path) -> None:
    made = tmp_path / "made.mp4"  # what a tool might write: 128 px frames, 3 frames short
    media.write_video(made, np.stack([np.full((128, 128, 3), 20 * i, np.uint8) for i in range(9)]), 25.0)
    copy = f"{PY} -c 'import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])' {made} {{out}}"
    with pytest.raises(TfbenchError, match=r"produced 9 frames \(\+1 padded at the start\) for a 12-frame"):
        _model(template=copy, pad_start="1").generate(_request())

    frames = _model(template=copy, pad_start="1", end_slack="2").generate(_request())
    assert frames.shape == (12, 96, 96, 3)
    levels = np.round(frames.reshape(12, -1).mean(axis=1) / 20).astype(int)
    assert list(levels) == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8]

    frames = _model(template=copy, end_slack="2").generate(_request(n=7))  # 2 extra frames are dropped
    assert list(np.round(frames.reshape(7, -1).mean(axis=1) / 20).astype(int)) == [0, 1, 2, 3, 4, 5, 6]


def test_shell_glob_output_and_isolated_concurrent_jobs(tmp_path: Path) -> None:
    """Two clips at once: each job has its own folder and inputs, so each output is its own clip's."""
    template = "test -s {audio} && test -s {reference} && cp {video} {outdir}/result.mp4 && echo {sample_id}"
    model = _model(template=template, output="{outdir}/*.mp4", shell="true", log_dir=str(tmp_path / "logs"))
    requests = [_request(sample_id="clip 'a'", offset=0), _request(sample_id="clip b", offset=100)]
    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(model.generate, requests))
    for request, frames in zip(requests, outputs, strict=True):
        assert np.abs(frames.astype(int) - request.faces).mean() < 3
    logs = [log.read_text() for log in sorted((tmp_path / "logs").glob("*.log"))]
    assert len(logs) == 2 and "clip 'a'" in "".join(logs)
    jobs = {line.split(": ", 1)[1] for log in logs for line in log.splitlines() if line.startswith("# cwd: ")}
    assert len(jobs) == 2 and not any(Path(job).exists() for job in jobs)  # private, and removed after


def test_option_errors_are_clear() -> None:
    with pytest.raises(TfbenchError, match=r"uses \{face\}; known placeholders: video, audio"):
        parse_model_options("command", {"template": "x --face {face}"})
    with pytest.raises(TfbenchError, match="model 'command' needs option 'template'"):
        parse_model_options("command", {})
    with pytest.raises(TfbenchError, match="timeout must be > 0"):
        parse_model_options("command", {"template": "x {video}", "timeout": "-1"})
    with pytest.raises(TfbenchError, match="option timeout='soon' must be a finite number"):
        parse_model_options("command", {"template": "x {video}", "timeout": "soon"})
    with pytest.raises(TfbenchError, match="No closing quotation"):
        parse_model_options("command", {"template": "x '{video}"})
    with pytest.raises(TfbenchError, match="did you mean 'timeout'"):
        parse_model_options("command", {"template": "x {video}", "timout": "5"})
    options = parse_model_options("command", {"template": "x {video}"})
    assert isinstance(options, CommandOptions) and options.record()["output"] == "{out}"
