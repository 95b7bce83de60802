"""Files that come from outside (network weights, dataset pair lists): a registry, a cache, sha256 checks.

Nothing is downloaded implicitly. `fetch` downloads into a private temporary folder beside the destination,
hashing while streaming, and moves the file in only when it is whole and matches, so loaders never open a
partial or tampered file. Loaders ask `resolve` for a path; a missing file is a one-line error saying what to
run. Where no full sha256 is known, the first verified download pins one in `$TFBENCH_HOME/pins.json`.

Files shipped inside the package (`package://` sources: the synthetic-data demo weights) are never
downloaded: `resolve` returns the installed file after checking its full sha256 (a few MB, so cheap), and
`verify` checks them like any cached file. The entries themselves are data, in `tfbench.weights_table`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from tfbench.errors import WeightsError
from tfbench.fileio import atomic_write_text
from tfbench.registry import Registry
from tfbench.weights_table import ENTRIES, WeightSpec

__all__ = [
    "WEIGHTS",
    "Progress",
    "VerifyResult",
    "WeightSpec",
    "expected_path",
    "fetch",
    "hash_status",
    "home_dir",
    "is_offline",
    "parse_overrides",
    "pinned_sha256",
    "resolve",
    "sha256_file",
    "spec",
    "verify",
]

Progress = Callable[[int, int | None], None]
"""Download progress callback: (bytes so far, total bytes or None when the server does not say)."""

_CHUNK = 1 << 20


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


def _package_path(s: WeightSpec) -> Path:
    """The installed file of a `package://` entry (it may be missing from a broken installation)."""
    package, inside = s.package_file()
    try:
        folder = resources.files(package)
    except ModuleNotFoundError:
        raise WeightsError(
            f"weights {s.name!r}: package {package!r} of {s.source} is not installed"
        ) from None
    return Path(str(folder.joinpath(inside)))


def expected_path(name: str) -> Path:
    """Where the file of entry `name` lives once fetched (it may not exist yet); a packaged one's own path."""
    s = spec(name)
    if s.packaged:
        return _package_path(s)
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
    if s.packaged:
        how = f"it ships inside the {s.package_file()[0]} package (an incomplete install): reinstall it"
    elif s.manual:
        how = f"it cannot be downloaded automatically: download {s.filename} by hand from {s.source} to there"
    else:
        how = f"run `tfbench weights fetch {s.name}`, or put a manually downloaded copy of {s.source} there"
    return (
        f"weights {s.name!r} ({s.description}) not found at {path} (expected {expected}); {how}; "
        f"or pass --weights {s.name}=PATH"
    )


def resolve(name: str, overrides: dict[str, Path] | None = None) -> Path:
    """The path a loader should open for `name`: the `--weights NAME=PATH` override, else the cache path.

    The cached file is not re-hashed here (that is `verify`'s job), but a known size is checked, which
    catches truncated copies at no cost; a packaged file (a few MB, never fetched, so never checked on
    download) is hashed on every call. A missing file raises a one-line `WeightsError`.
    """
    s = spec(name)
    if overrides and s.name in overrides:
        if not (path := overrides[s.name]).is_file():
            raise WeightsError(f"--weights {s.name}={path}: no such file")
        return path
    if not (path := expected_path(s.name)).is_file():
        raise WeightsError(_missing_message(s, path))
    if s.packaged and (problem := _mismatch(s, sha256_file(path))) is not None:
        raise WeightsError(f"weights {s.name!r}: the packaged file {path} was changed ({problem}); reinstall")
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
    if s.packaged:
        changed = (
            f"weights {s.name!r} ships inside its package, never downloaded{stale}; reinstall the package"
        )
        raise WeightsError(changed if stale else _missing_message(s, dest))
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


for _spec in ENTRIES:
    WEIGHTS.add(_spec.name, _spec)
