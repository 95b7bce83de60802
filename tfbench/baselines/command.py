"""The `command` model: any third-party inference script, run once per clip from a command template.

    tfbench run --model command --model-option "template=python inference.py --face {video}
        --audio {audio} --outfile {out}" --model-option cwd=/path/to/Wav2Lip ...

For every clip the wrapper makes a private job folder (`tempfile.mkdtemp`, so concurrent jobs and ranks never
share one), writes there only the inputs the template names, runs the command without a shell (the template is
split with `shlex` first and each word filled in afterwards, so a path with spaces stays one argument), sends
its stdout and stderr to a log file, reads the video it wrote, resizes the frames to the crop size when they
differ, and checks the frame count. Every failure (cannot start, non-zero exit, timeout, no output, unreadable
output, wrong frame count) is a `TfbenchError` that names the sample, the command and the log, so the runner
records a failed row and goes on with the next clip. A timeout kills the command's whole process group.
The output must have the clip's frame count unless the options say how the tool's output lines up:
`pad_start=K` (its first frame shows input frame K; K copies are put in front) and `end_slack=N` (up to N
frames missing at the end are filled with its last frame, up to N extra ones dropped); the log records both.

Placeholders (`{name}` in `template` and `output`; `{{`/`}}` for literal braces):
  video      the clip's face crops as mp4 (H.264, crop size, 25 fps) with its driving audio (AAC)
  audio      the driving audio as a 16 kHz mono 16-bit wav
  reference  the identity-reference crop as a png
  out        where the tool should write its mp4: <job>/out/<name>.mp4
  outdir     <job>/out, an empty folder for the tool's results
  workdir    the job folder;   name  a per-job unique file stem (sample id + random token)
  frames     the clip's frame count;   fps  25;   size  the crop size;   sample_id  the sample's id
Input files are named `<name>.mp4`, `<name>.wav`, `<name>_ref.png`, so tools that name results or caches after
their input (several do, in folders relative to their working directory) never mix two clips up.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shlex
import signal
import string
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from tfbench.data.faces_crop import resize_uint8
from tfbench.errors import TfbenchError
from tfbench.media import read_video, write_video
from tfbench.models.protocol import (
    GenerationRequest,
    ModelOptions,
    TalkingFaceModel,
    check_output,
    register_model,
)

__all__ = ["PLACEHOLDERS", "CommandModel", "CommandOptions"]

PLACEHOLDERS = (
    "video",
    "audio",
    "reference",
    "out",
    "outdir",
    "workdir",
    "name",
    "frames",
    "fps",
    "size",
    "sample_id",
)
_GLOB_CHARS = re.compile(r"[*?\[]")


def _placeholders(text: str, what: str) -> set[str]:
    """The placeholder names a template uses; an unknown name or a format spec is an error."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TfbenchError(f"command: {what} {text!r}: {exc}") from None
    names = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise TfbenchError(
                f"command: {what} uses {{{name}}}; known placeholders: {', '.join(PLACEHOLDERS)}"
            )
        names.add(name)
    return names


@dataclass(frozen=True)
class CommandOptions(ModelOptions):
    """How to run the tool; see the module docstring for the placeholders."""

    template: str = field(metadata={"help": "the command line, e.g. python inference.py --face {video} ..."})
    output: str = field(
        default="{out}",
        metadata={"help": "where the tool writes its video (relative to cwd; a glob must match one file)"},
    )
    cwd: Path | None = field(
        default=None, metadata={"help": "working directory of the command (default: the job folder)"}
    )
    timeout: float = field(default=600.0, metadata={"help": "seconds per clip before the command is killed"})
    shell: bool = field(
        default=False, metadata={"help": "run through /bin/sh (placeholders are shell-quoted)"}
    )
    log_dir: Path | None = field(
        default=None, metadata={"help": "folder for the per-clip logs (default: a new temporary folder)"}
    )
    pad_start: int = field(
        default=0, metadata={"help": "frames the tool drops at the start; filled with its first frame"}
    )
    end_slack: int = field(
        default=0,
        metadata={"help": "frames the output may miss (filled with its last) or add (dropped) at the end"},
    )

    def __post_init__(self) -> None:
        if not self.template.strip():
            raise TfbenchError("command: option template is empty")
        if self.timeout <= 0:
            raise TfbenchError(f"command: timeout must be > 0 seconds, got {self.timeout}")
        if self.pad_start < 0 or self.end_slack < 0:
            raise TfbenchError("command: pad_start and end_slack must be >= 0")
        if self.cwd is not None and not self.cwd.is_dir():
            raise TfbenchError(f"command: cwd {self.cwd} is not a folder")
        _placeholders(self.template, "template")
        _placeholders(self.output, "output")
        if not self.shell:
            try:
                shlex.split(self.template)
            except ValueError as exc:
                raise TfbenchError(f"command: template {self.template!r}: {exc}") from None


def _safe_stem(sample_id: str) -> str:
    """A short file-name-safe form of a sample id ("lrs2/123/00001" -> "lrs2__123__00001"); no dots, since
    some tools split a path at its first "." to find the extension."""
    return re.sub(r"[^A-Za-z0-9_+-]", "_", sample_id.replace("/", "__"))[-80:] or "clip"


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """float32 mono in [-1, 1] as a 16-bit PCM wav (the format scipy.io.wavfile and librosa read)."""
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (its own session), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover  (Windows: no process groups here)
            proc.kill()
    proc.wait()


def _last_line(log_path: Path) -> str:
    """The tool's last non-empty line in a log (what a failing tool usually says), shortened for an error."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    said = (line.strip() for line in reversed(lines) if line.strip() and not line.startswith("# "))
    tail = next(said, "")  # lines starting "# " are the wrapper's own notes
    return tail if len(tail) <= 200 else tail[:197] + "..."


@register_model("command")
class CommandModel(TalkingFaceModel):
    """A third-party tool run per clip: see the module docstring and docs/baselines.md for templates."""

    crop_size: ClassVar[int] = 96
    description: ClassVar[str] = (
        "any inference script, run per clip from a command template (docs/baselines.md)"
    )
    options_class = CommandOptions

    def __init__(self, options: CommandOptions) -> None:
        self.options = options
        self.uses = _placeholders(options.template, "template") | _placeholders(options.output, "output")
        if options.log_dir is not None:
            options.log_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir = options.log_dir
        else:
            self.log_dir = Path(tempfile.mkdtemp(prefix="tfbench-command-logs-"))

    @classmethod
    def load(
        cls,
        device: str = "cpu",
        overrides: dict[str, Path] | None = None,
        options: CommandOptions | None = None,
    ) -> CommandModel:
        if options is None:
            raise TfbenchError("model 'command' needs option 'template' (--model-option template=...)")
        return cls(options)

    def generate(self, request: GenerationRequest) -> np.ndarray:
        """Run the tool on one clip in its own job folder (removed afterwards; the log is kept)."""
        with tempfile.TemporaryDirectory(prefix="tfbench-job-") as job:
            return self._run(request, Path(job))

    def _run(self, request: GenerationRequest, job: Path) -> np.ndarray:
        name = f"{_safe_stem(request.sample_id)}-{job.name.rsplit('-', 1)[-1]}"
        values: dict[str, object] = {
            "video": job / f"{name}.mp4",
            "audio": job / f"{name}.wav",
            "reference": job / f"{name}_ref.png",
            "outdir": job / "out",
            "out": job / "out" / f"{name}.mp4",
            "workdir": job,
            "name": name,
            "frames": request.n_frames,
            "fps": f"{request.fps:g}",
            "size": self.crop_size,
            "sample_id": request.sample_id,
        }
        self._write_inputs(request, values)
        cwd = self.options.cwd or job
        command = self._command(values)
        shown = command if isinstance(command, str) else shlex.join(command)
        log_path = self.log_dir / f"{name}.log"
        where = f"{request.sample_id}: command {shown!r}"
        code = self._execute(command, shown, cwd, log_path, where)
        if code != 0:
            said = _last_line(log_path)
            raise TfbenchError(
                f"{where} exited with code {code}{f' ({said})' if said else ''} (log: {log_path})"
            )
        output = self._find_output(values, cwd, where, log_path)
        return self._read_output(request, output, where, log_path)

    def _write_inputs(self, request: GenerationRequest, values: dict[str, object]) -> None:
        """Write the input files that the template uses (and the empty output folder)."""
        Path(str(values["outdir"])).mkdir()
        if "video" in self.uses:
            write_video(
                Path(str(values["video"])), request.faces, request.fps, request.audio, request.sample_rate
            )
        if "audio" in self.uses:
            write_wav(Path(str(values["audio"])), request.audio, request.sample_rate)
        if "reference" in self.uses:
            from PIL import Image  # Pillow comes with matplotlib and scikit-image

            Image.fromarray(request.reference[0]).save(Path(str(values["reference"])))

    def _command(self, values: dict[str, object]) -> list[str] | str:
        """argv (template split first, then each word filled) or, with `shell`, one quoted shell line."""
        if self.options.shell:
            return self.options.template.format(**{k: shlex.quote(str(v)) for k, v in values.items()})
        return [word.format(**values) for word in shlex.split(self.options.template)]

    def _execute(self, command: list[str] | str, shown: str, cwd: Path, log_path: Path, where: str) -> int:
        """Run the command with its output in the log; a timeout or an interrupt kills its process group."""
        started = time.perf_counter()
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(f"# tfbench command wrapper\n# command: {shown}\n# cwd: {cwd}\n")
            log.write(f"# timeout: {self.options.timeout:g} s\n")
            log.flush()
            try:
                proc = subprocess.Popen(
                    command,
                    cwd=cwd,
                    shell=self.options.shell,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                log.write(f"# could not start: {exc}\n")
                raise TfbenchError(f"{where} could not start: {exc} (log: {log_path})") from None
            try:
                code = proc.wait(timeout=self.options.timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                log.write(f"\n# killed after the {self.options.timeout:g} s timeout\n")
                raise TfbenchError(
                    f"{where} timed out after {self.options.timeout:g} s (log: {log_path})"
                ) from None
            except BaseException:  # KeyboardInterrupt: the command is in its own session, stop it too
                _kill(proc)
                raise
            log.write(f"\n# exit code {code} after {time.perf_counter() - started:.1f} s\n")
        return code

    def _find_output(self, values: dict[str, object], cwd: Path, where: str, log_path: Path) -> Path:
        """The file the `output` option names (a glob must match exactly one file)."""
        pattern = self.options.output.format(**values)
        path = Path(pattern) if Path(pattern).is_absolute() else cwd / pattern
        if _GLOB_CHARS.search(pattern):
            matches = sorted(glob.glob(str(path)))
            if len(matches) != 1:
                found = "no file" if not matches else f"{len(matches)} files ({', '.join(matches[:3])})"
                raise TfbenchError(f"{where} left {found} matching {path} (log: {log_path})")
            path = Path(matches[0])
        if not path.is_file():
            raise TfbenchError(f"{where} exited 0 but wrote no {path} (log: {log_path})")
        return path

    def _read_output(self, request: GenerationRequest, path: Path, where: str, log_path: Path) -> np.ndarray:
        """The tool's frames at 25 fps and crop size, padded as the options allow, or a frame-count error."""
        try:
            video = read_video(path, fps=request.fps, audio=False)
        except TfbenchError as exc:
            raise TfbenchError(f"{where} wrote an unreadable video: {exc} (log: {log_path})") from None
        frames = video.frames
        produced = len(frames)
        if self.options.pad_start:
            frames = np.concatenate([np.repeat(frames[:1], self.options.pad_start, axis=0), frames])
        expected = request.n_frames
        missing = expected - len(frames)
        if abs(missing) > self.options.end_slack:
            padding = f" (+{self.options.pad_start} padded at the start)" if self.options.pad_start else ""
            raise TfbenchError(
                f"{where} produced {produced} frames{padding} for a {expected}-frame clip "
                f"(end_slack={self.options.end_slack}) (log: {log_path})"
            )
        if missing > 0:
            frames = np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)])
        frames = frames[:expected]
        size = self.crop_size
        if frames.shape[1:3] != (size, size):
            frames = np.stack([resize_uint8(frame, size, size) for frame in frames])
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(
                f"# read {produced} frames {video.frames.shape[2]}x{video.frames.shape[1]} from {path}"
                f"{f' (converted from {video.resampled_from:g} fps)' if video.resampled_from else ''}; "
                f"padded {self.options.pad_start} at the start, {missing} at the end (negative: dropped)\n"
            )
        return check_output(request, np.ascontiguousarray(frames), size)
