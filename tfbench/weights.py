"""Files that come from outside (network weights, dataset pair lists): a registry, a cache, sha256 checks.

Nothing is downloaded implicitly. `fetch` downloads into a private temporary folder beside the destination,
hashing while streaming, and moves the file in only when it is whole and matches, so loaders never open a
partial or tampered file. Loaders ask `resolve` for a path; a missing file is a one-line error saying what to
run. Where no full sha256 is known, the first verified download pins one in `$TFBENCH_HOME/pins.json`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tfbench.errors import WeightsError
from tfbench.fileio import atomic_write_text
from tfbench.registry import Registry

Progress = Callable[[int, int | None], None]
"""Download progress callback: (bytes so far, total bytes or None when the server does not say)."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightSpec:
    """One downloadable file: where it comes from, what it must hash to, and where loaders expect it.

    `source` is an http(s):// or file:// URL, `gdrive:<file id>` (fetched with gdown), or, with `manual=True`,
    a page to download the file from by hand (a Google Drive folder, which gdown cannot fetch as one file).
    `sha256_prefix` is the short hash torch hub file names carry. `location` "torch_hub" means
    torch.hub.get_dir()/checkpoints, where pytorch-fid, torchvision and face_alignment look for their files.
    """

    name: str
    description: str
    source: str
    filename: str
    format: str
    licence: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    location: Literal["home", "torch_hub"] = "home"
    manual: bool = False
    note: str = ""  # where the hash and size come from

    def __post_init__(self) -> None:
        full, prefix = self.sha256 or "", self.sha256_prefix or ""
        checks = {
            "sha256 must be 64 lower-case hex digits": re.fullmatch(r"[0-9a-f]{64}", full or "0" * 64),
            "sha256_prefix must be lower-case hex": re.fullmatch(r"[0-9a-f]+", prefix or "0"),
            "sha256_prefix must match sha256": full.startswith(prefix) or not full,
            "location must be home or torch_hub": self.location in ("home", "torch_hub"),
            "filename must be a plain file name": re.fullmatch(r"[^/\\.][^/\\]*", self.filename),
            "source must be a URL or gdrive:<id>": re.match(r"(https?|file)://|gdrive:", self.source),
        }
        if problems := [message for message, ok in checks.items() if not ok]:
            raise ValueError(f"weights entry {self.name!r}: {'; '.join(problems)}")


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found: is the file there, does it match every known hash, is a full sha256 known."""

    name: str
    path: Path
    present: bool
    ok: bool
    pinned: bool
    sha256: str | None
    detail: str


WEIGHTS: Registry[WeightSpec] = Registry("weights entry", entry_point_group="tfbench.weights")


def home_dir() -> Path:
    """`$TFBENCH_HOME` (default ~/.cache/tfbench), read on every call so tests and users can change it."""
    value = os.environ.get("TFBENCH_HOME", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "tfbench"


def is_offline() -> bool:
    """True when `TFBENCH_OFFLINE` is 1/true/yes/on: every download is refused."""
    return os.environ.get("TFBENCH_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def spec(name: str) -> WeightSpec:
    """The registry entry called `name` (or an alias); an unknown name gets a did-you-mean error."""
    return WEIGHTS.get(name)


def expected_path(name: str) -> Path:
    """Where the file of entry `name` lives once fetched (it may not exist yet)."""
    s = spec(name)
    if s.location == "torch_hub":
        import torch.hub  # lazily: the CLI imports this module at start-up

        return Path(torch.hub.get_dir()) / "checkpoints" / s.filename
    return home_dir() / "weights" / s.filename


def sha256_file(path: Path, chunk_size: int = _CHUNK) -> str:
    """The sha256 hex digest of a file, read in chunks so large checkpoints never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _read_pins() -> dict[str, Any]:
    """pins.json as a dict; a damaged file is an error, never silently ignored (it guards integrity)."""
    path = home_dir() / "pins.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path} is unreadable ({exc}); fix or delete it (hashes are re-pinned)") from exc
    if not isinstance(data, dict):
        raise WeightsError(f"{path} is not a JSON object; fix or delete it (hashes are re-pinned)")
    return data


def _write_pin(s: WeightSpec, digest: str) -> None:
    """Record `digest` for `s` in pins.json, written to a temporary file and renamed into place."""
    pins = _read_pins()
    pins[s.name] = {"sha256": digest, "filename": s.filename, "source": s.source}
    atomic_write_text(home_dir() / "pins.json", json.dumps(pins, indent=2, sort_keys=True) + "\n")


def pinned_sha256(name: str) -> str | None:
    """The full sha256 that a verified download recorded for entry `name`, if any."""
    entry = _read_pins().get(WEIGHTS.canonical(name))
    return entry.get("sha256") if isinstance(entry, dict) else None


def _full_hash(s: WeightSpec) -> str | None:
    return s.sha256 or pinned_sha256(s.name)


def hash_status(name: str) -> Literal["sha256", "pinned", "prefix", "unpinned"]:
    """How a file is checked: full sha256 in the registry, pinned in pins.json, prefix only, or not yet."""
    s = spec(name)
    if s.sha256 or pinned_sha256(s.name):
        return "sha256" if s.sha256 else "pinned"
    return "prefix" if s.sha256_prefix else "unpinned"


def _mismatch(s: WeightSpec, digest: str) -> str | None:
    """None when `digest` agrees with every known hash of `s`, else 'expected ..., got ...'."""
    if full := _full_hash(s):
        pin = "" if s.sha256 else f" (pinned in {home_dir() / 'pins.json'}; delete {s.name!r} there to renew)"
        return None if digest == full else f"expected sha256 {full}{pin}, got {digest}"
    if s.sha256_prefix and not digest.startswith(s.sha256_prefix):
        return f"expected sha256 starting {s.sha256_prefix}, got {digest}"
    return None


def parse_overrides(items: Iterable[str]) -> dict[str, Path]:
    """Turn `--weights NAME=PATH` options into {canonical name: path}; unknown names get a did-you-mean."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise WeightsError(f"--weights expects NAME=PATH (e.g. wav2lip=/ckpt/w2l.pth), got {item!r}")
        key = WEIGHTS.canonical(name)
        if key in out:
            raise WeightsError(f"--weights {key}=... is given more than once")
        out[key] = Path(value).expanduser()
    return out


def _missing_message(s: WeightSpec, path: Path) -> str:
    full, prefix = _full_hash(s), s.sha256_prefix
    expected = (
        f"sha256 {full}" if full else f"sha256 starting {prefix}" if prefix else "sha256 not pinned yet"
    )
    how = (
        f"it cannot be downloaded automatically: download {s.filename} by hand from {s.source} to there"
        if s.manual
        else f"run `tfbench weights fetch {s.name}`, or put a manually downloaded copy of {s.source} there"
    )
    return (
        f"weights {s.name!r} ({s.description}) not found at {path} (expected {expected}); {how}; "
        f"or pass --weights {s.name}=PATH"
    )


def resolve(name: str, overrides: dict[str, Path] | None = None) -> Path:
    """The path a loader should open for `name`: the `--weights NAME=PATH` override, else the cache path.

    The cached file is not re-hashed here (that is `verify`'s job), but a known size is checked, which
    catches truncated copies at no cost. A missing file raises a one-line `WeightsError`.
    """
    s = spec(name)
    if overrides and s.name in overrides:
        if not (path := overrides[s.name]).is_file():
            raise WeightsError(f"--weights {s.name}={path}: no such file")
        return path
    if not (path := expected_path(s.name)).is_file():
        raise WeightsError(_missing_message(s, path))
    if s.size is not None and (actual := path.stat().st_size) != s.size:
        raise WeightsError(
            f"weights {s.name!r} at {path} has {actual} bytes, expected {s.size} (a partial or other copy);"
            f" run `tfbench weights fetch {s.name}` to replace it"
        )
    return path


def _download_url(url: str, out: Path, progress: Progress | None) -> str:
    """Stream `url` into `out`, hashing on the way; a body shorter than Content-Length is an error."""
    digest, done = hashlib.sha256(), 0
    request = urllib.request.Request(url, headers={"User-Agent": "tfbench"})
    with urllib.request.urlopen(request, timeout=60) as response, open(out, "wb") as f:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        while block := response.read(_CHUNK):
            f.write(block)
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
    if total is not None and done != total:
        raise WeightsError(f"the transfer stopped after {done} of {total} bytes")
    return digest.hexdigest()


def _download_gdrive(file_id: str, out: Path, progress: Progress | None) -> str:
    """Fetch a Google Drive file with gdown (imported here: only this path needs it), then hash it."""
    import gdown

    wanted = progress is not None and "progress" in inspect.signature(gdown.download).parameters  # gdown>=5.2
    extra: dict[str, Any] = {"progress": progress} if wanted else {}
    if gdown.download(id=file_id, output=str(out), quiet=True, **extra) is None or not out.is_file():
        raise WeightsError("gdown returned no file (the id may be private, a folder, or over its quota)")
    return sha256_file(out)


def fetch(name: str, progress: Progress | None = None) -> Path:
    """Download the file of `name` into place, verified; a valid copy already there is kept as it is.

    The download goes to a private temporary folder beside the destination and is moved in with
    `os.replace` only after its hash matches, so an interrupted or rejected download leaves nothing behind.
    """
    s = spec(name)
    dest, stale = expected_path(s.name), ""
    if dest.is_file():
        if (problem := _mismatch(s, digest := sha256_file(dest))) is None:
            if _full_hash(s) is None:
                _write_pin(s, digest)
            return dest
        stale = f"; the copy at {dest} does not match ({problem})"
    if s.manual:
        again = f"weights {s.name!r}: download {s.filename} again by hand from {s.source}{stale}"
        raise WeightsError(again if stale else _missing_message(s, dest))
    if is_offline():
        raise WeightsError(
            f"weights {s.name!r}: TFBENCH_OFFLINE is set, so {s.source} is not downloaded{stale}; "
            f"unset it, or put a copy at {dest}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{s.filename}.", suffix=".part", dir=dest.parent))
    try:
        tmp = workdir / s.filename
        try:
            gdrive = s.source.startswith("gdrive:")
            download = _download_gdrive if gdrive else _download_url
            digest = download(s.source.removeprefix("gdrive:"), tmp, progress)
        except Exception as exc:  # urllib, http.client, socket and gdown raise many unrelated types
            raise WeightsError(f"weights {s.name!r}: download from {s.source} failed: {exc}") from exc
        if (problem := _mismatch(s, digest)) is not None:
            raise WeightsError(
                f"weights {s.name!r}: the file downloaded from {s.source} was rejected: {problem}; "
                f"nothing was written to {dest}"
            )
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if _full_hash(s) is None:
        _write_pin(s, digest)
    return dest


def verify(name: str) -> VerifyResult:
    """Hash the cached file of `name` and compare it with the registry's sha256, its prefix, or the pin."""
    s = spec(name)
    path, pinned = expected_path(s.name), _full_hash(s) is not None
    if not path.is_file():
        return VerifyResult(s.name, path, False, False, pinned, None, _missing_message(s, path))
    problem = _mismatch(s, digest := sha256_file(path))
    if problem is not None:
        detail = f"{problem}; run `tfbench weights fetch {s.name}` to replace it"
    elif pinned:
        detail = "sha256 matches"
    else:
        matched = f"sha256 prefix {s.sha256_prefix} matches" if s.sha256_prefix else "no hash to compare with"
        detail = f"{matched}; not pinned yet (`tfbench weights fetch` pins it)"
    return VerifyResult(s.name, path, True, problem is None, pinned, digest, detail)


# Weights: sha256 and size from the Git LFS pointers of agreeing Hugging Face mirrors (named in `note`), and
# torch hub names carry the hash's prefix. Pair lists: the git blobs at Rudrabha/Wav2Lip master (since 2020).
_OXFORD = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/"
_DRIVE = "https://drive.google.com/drive/folders/"
_W2L_LISTS = "https://raw.githubusercontent.com/Rudrabha/Wav2Lip/master/evaluation/test_filelists/"
_W2L_FORMAT = "wav2lip checkpoint dict ('state_dict', keys may carry 'module.')"
_W2L_LICENCE = "Wav2Lip: personal/research/non-commercial use only (its README); trained on LRS2"
_MIT = "MIT (syncnet_python repository)"
_BBC = "Copyright BBC: non-commercial research under a BBC LRS/LRW agreement; fetched, never shipped"
_TED = "LRS3-TED dataset terms (non-commercial research); fetched, never shipped"

# fmt: off
for _spec in (
    WeightSpec(
        "syncnet_v2", "syncnet_python SyncNet S, the LSE-D / LSE-C scorer", _OXFORD + "syncnet_v2.model",
        "syncnet_v2.model", "torch state_dict of S (netcnnaud, netfcaud, netcnnlip, netfclip)", _MIT,
        sha256="961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442", size=54573114,
        note="HF mirrors: lithiumice/syncnet, chunyu-li/LatentSync, Hyathi/Preprocess",
    ),
    WeightSpec(
        "s3fd", "S3FD face detector of syncnet_python's pipeline", _OXFORD + "sfd_face.pth",
        "sfd_face.pth", "torch state_dict (S3FD)", _MIT,
        sha256="d54a87c2b7543b64729c9a25eafd188da15fd3f6e02f0ecec76ae1b30d86c491", size=89844381,
        note="HF mirrors: lithiumice/syncnet, Hyathi/Preprocess",
    ),
    WeightSpec(
        "s3fd_fan", "S3FD face detector of face_alignment, used by Wav2Lip",
        "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
        "s3fd-619a316812.pth", "torch state_dict (S3FD, face_alignment)", "BSD-3-Clause (face_alignment)",
        sha256="619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543", sha256_prefix="619a316812",
        size=89843225, location="torch_hub", note="HF mirrors: camenduru/Wav2Lip, chunyu-li/face-alignment",
    ),
    WeightSpec(
        "wav2lip", "Wav2Lip generator (no visual-quality GAN)", _DRIVE + "153HLrqlBNxzZcHi17PEvP09kkAfzRshM",
        "wav2lip.pth", _W2L_FORMAT, _W2L_LICENCE, manual=True,
        sha256="b78b681b68ad9fe6c6fb1debc6ff43ad05834a8af8a62ffc4167b7b34ef63c37", size=435807851,
        note="HF mirrors: Nekochu/Wav2Lip, steinhaug/cache-repository; also in the wav2lip_syncnet folder",
    ),
    WeightSpec(
        "wav2lip_gan", "Wav2Lip generator trained with the visual-quality GAN",
        "gdrive:15G3U08c8xsCkOqQxE38Z2XXDnPcOptNk", "wav2lip_gan.pth", _W2L_FORMAT, _W2L_LICENCE,
        sha256="ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8", size=435801865,
        note="HF mirrors: Nekochu/Wav2Lip, steinhaug/cache-repository, anon4ik/hjkh",
    ),
    WeightSpec(
        "wav2lip_syncnet", "Wav2Lip's expert lip-sync discriminator",
        _DRIVE + "1I-0dNLfFOSFwrfqjNa-SXuwaURHE5K4k", "lipsync_expert.pth",
        "wav2lip checkpoint dict ('state_dict' of the expert SyncNet)", _W2L_LICENCE, manual=True,
        sha256="9b9936c721696446eeed353032cab242a8cf0eed8c46cde540366f6ae5493be5", size=197357631,
        note="HF mirrors: Nekochu/Wav2Lip, steinhaug/cache-repository, Kedreamix/Linly-Talker",
    ),
    WeightSpec(
        "fid_inception", "pytorch-fid's InceptionV3 (FID features)",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "pt_inception-2015-12-05-6726825d.pth", "torch state_dict (pytorch-fid FIDInceptionV3)",
        "Apache-2.0 (pytorch-fid; ported from TensorFlow's 2015-12-05 Inception)",
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", sha256_prefix="6726825d",
        size=95628359, location="torch_hub", note="HF mirror: RaphaelLiu/EvalCrafter-Models commit 6040b4d",
    ),
    WeightSpec(
        "lpips_alex", "torchvision AlexNet, the LPIPS v0.1 backbone (lpips ships its own linear heads)",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "alexnet-owt-7be5be79.pth",
        "torch state_dict (torchvision AlexNet IMAGENET1K_V1)", "BSD-3-Clause (torchvision), ImageNet",
        sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", sha256_prefix="7be5be79",
        location="torch_hub", note="HF mirrors: blanchon/image-gs-models-utils, CSWRY/VOSR; about 244 MB",
    ),
    WeightSpec("ours", "the paper's G_S + G_L from `tfbench train generator` (no public checkpoint exists)",
               "file://OUT/last.pt", "ours_generator.pt", "tfbench training checkpoint (stage 'generator')",
               "trained locally; the training data's licence applies", manual=True),
    WeightSpec(
        "vgg19", "torchvision VGG19, the perceptual-loss backbone for training the paper's generators",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "vgg19-dcbb9e9d.pth",
        "torch state_dict (torchvision VGG19 IMAGENET1K_V1; features.* used)", "BSD-3-Clause, ImageNet",
        sha256_prefix="dcbb9e9d", location="torch_hub", note="about 548 MB; sha256 pinned on first download",
    ),
    *(
        WeightSpec(
            f"{data}_pairs", f"Wav2Lip's {data.upper()} test pairs for dubbing evaluation ({lines} lines)",
            f"{_W2L_LISTS}{data}.txt", f"{data}_test_pairs.txt", "text list: 'audioClip videoClip' per line",
            licence, sha256=sha, size=size, note="git blob at Rudrabha/Wav2Lip master",
        )
        for data, lines, size, licence, sha in (
            ("lrs2", 14239, 740428, _BBC, "c57815f5579e1ecf7a345c30f43197dc7afa983e151af650b4b5bcf107648fd8"),
            ("lrs3", 14000, 504000, _TED, "a58e9dd8d77e4f9601475ead1ee5a5be001528a259c815a5a2146001d2a8f472"),
            ("lrw", 28000, 760931, _BBC, "391ab03e8486d2c25afd84c97f7a0017cffc7a192d0aa46b4dcbcb43dd74a254"),
        )
    ),
):
    WEIGHTS.add(_spec.name, _spec)
