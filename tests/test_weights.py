"""The weights registry and cache: verified, atomic, offline-aware downloads from local sources only.

Every source here is a file the test writes (file://) or serves on 127.0.0.1; nothing touches the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from tfbench import weights
from tfbench.errors import TfbenchError, WeightsError
from tfbench.registry import Registry, UnknownNameError
from tfbench.weights import WeightSpec

PAYLOAD = bytes(range(256)) * 40 + b"tail"  # 10 244 bytes: several chunks at the 1 KiB chunk used below
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
OTHER_SHA = hashlib.sha256(b"something else").hexdigest()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $TFBENCH_HOME and torch hub dir, online mode, small download chunks."""
    monkeypatch.setenv("TFBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("TFBENCH_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "_CHUNK", 1024)
    return tmp_path / "home"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry[WeightSpec]:
    """A fresh registry standing in for `weights.WEIGHTS` (the real entries stay untouched)."""
    fresh: Registry[WeightSpec] = Registry("weights entry")
    monkeypatch.setattr(weights, "WEIGHTS", fresh)
    return fresh


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The upstream file, reached through a file:// URL."""
    path = tmp_path / "upstream" / "model.pth"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def add(registry: Registry[WeightSpec], name: str = "toy", source: str = "", **kw: Any) -> WeightSpec:
    fields: dict[str, Any] = {
        "description": "a toy checkpoint",
        "filename": "toy.pth",
        "format": "torch state_dict",
        "licence": "MIT",
        "sha256": PAYLOAD_SHA,
    }
    fields.update(kw)
    return registry.add(name, WeightSpec(name=name, source=source, **fields))


def files_in(directory: Path) -> list[str]:
    """Everything under `directory` (hidden temporary files and folders included)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


# ------------------------------------------------------------------------------------------ fetch


def test_fetch_verifies_and_places_the_file(registry: Registry[WeightSpec], source: Path) -> None:
    add(registry, source=source.as_uri())
    seen: list[tuple[int, int | None]] = []
    path = weights.fetch("toy", progress=lambda done, total: seen.append((done, total)))
    assert path == weights.expected_path("toy") == weights.home_dir() / "weights" / "toy.pth"
    assert path.read_bytes() == PAYLOAD
    assert files_in(path.parent) == ["toy.pth"]
    assert len(seen) > 1 and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert weights.resolve("toy") == path
    assert weights.verify("toy").ok


def test_a_valid_copy_is_not_downloaded_again(
    registry: Registry[WeightSpec], source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(registry, source=source.as_uri())
    first = weights.fetch("toy")

    def no_download(*args: object) -> str:
        raise AssertionError("downloaded although a valid copy was present")

    monkeypatch.setattr(weights, "_download_url", no_download)
    assert weights.fetch("toy") == first


@pytest.mark.parametrize(
    ("pin", "expected"),
    [({"sha256": OTHER_SHA}, OTHER_SHA), ({"sha256": None, "sha256_prefix": "abc123"}, "abc123")],
)
def test_a_wrong_hash_is_rejected_and_leaves_nothing(
    registry: Registry[WeightSpec], source: Path, pin: dict[str, Any], expected: str
) -> None:
    add(registry, source=source.as_uri(), **pin)
    with pytest.raises(WeightsError) as info:
        weights.fetch("toy")
    message = str(info.value)
    assert expected in message and PAYLOAD_SHA in message and "toy" in message
    assert files_in(weights.home_dir()) == ["weights"]  # no partial file, no temporary folder
    assert not (weights.home_dir() / "pins.json").exists()


def test_a_failing_source_is_a_weights_error_naming_entry_and_source(
    registry: Registry[WeightSpec], tmp_path: Path
) -> None:
    missing = (tmp_path / "nowhere.pth").as_uri()
    add(registry, source=missing)
    with pytest.raises(WeightsError, match=r"toy.*nowhere\.pth"):
        weights.fetch("toy")
    assert files_in(weights.home_dir() / "weights") == []


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /full.pth; /short.pth announces all of it but closes the connection half-way."""

    def do_GET(self) -> None:
        body = PAYLOAD if self.path == "/full.pth" else PAYLOAD[: len(PAYLOAD) // 2]
        self.send_response(200 if self.path in ("/full.pth", "/short.pth") else 404)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_download(registry: Registry[WeightSpec], server: str) -> None:
    add(registry, source=f"{server}/full.pth")
    assert weights.fetch("toy").read_bytes() == PAYLOAD


def test_a_server_closing_early_leaves_no_file(registry: Registry[WeightSpec], server: str) -> None:
    add(registry, source=f"{server}/short.pth")
    with pytest.raises(WeightsError, match=f"stopped after {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes"):
        weights.fetch("toy")
    assert files_in(weights.home_dir() / "weights") == []


def test_a_reader_failing_mid_stream_leaves_no_file(
    registry: Registry[WeightSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(io.BytesIO):
        headers: ClassVar[dict[str, str]] = {"Content-Length": str(len(PAYLOAD))}

        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 2048:
                raise ConnectionResetError("connection reset by peer")
            return super().read(size)

    monkeypatch.setattr(weights.urllib.request, "urlopen", lambda *a, **k: Broken(PAYLOAD))
    add(registry, source="https://example.invalid/toy.pth")
    with pytest.raises(WeightsError, match="connection reset"):
        weights.fetch("toy")
    assert files_in(weights.home_dir() / "weights") == []


def test_offline_mode_refuses_to_download(
    registry: Registry[WeightSpec], source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(registry, source=source.as_uri())
    monkeypatch.setenv("TFBENCH_OFFLINE", "1")
    with pytest.raises(WeightsError, match="TFBENCH_OFFLINE") as info:
        weights.fetch("toy")
    assert str(weights.expected_path("toy")) in str(info.value)
    assert files_in(weights.home_dir()) == []
    monkeypatch.delenv("TFBENCH_OFFLINE")
    weights.fetch("toy")
    monkeypatch.setenv("TFBENCH_OFFLINE", "1")
    assert weights.fetch("toy").read_bytes() == PAYLOAD  # a valid copy needs no network


def test_a_manual_entry_explains_where_to_get_the_file(registry: Registry[WeightSpec]) -> None:
    add(registry, source="https://drive.google.com/drive/folders/FOLDER", manual=True)
    with pytest.raises(
        WeightsError, match=re.escape("by hand from https://drive.google.com/drive/folders/FOLDER")
    ):
        weights.fetch("toy")
    assert files_in(weights.home_dir()) == []


def test_gdrive_source_uses_gdown_and_is_hash_checked(
    registry: Registry[WeightSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gdown

    calls: list[str] = []

    def fake_download(*, id: str, output: str, quiet: bool = False, **kw: Any) -> str:
        calls.append(id)
        Path(output).write_bytes(PAYLOAD if id == "good" else b"a quota page")
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    add(registry, source="gdrive:good")
    add(registry, "bad", source="gdrive:bad", filename="bad.pth")
    assert weights.fetch("toy").read_bytes() == PAYLOAD
    with pytest.raises(WeightsError, match=f"expected sha256 {PAYLOAD_SHA}"):
        weights.fetch("bad")
    assert calls == ["good", "bad"]
    assert files_in(weights.home_dir() / "weights") == ["toy.pth"]


# ------------------------------------------------------------------------------------------ pins


def test_pin_on_first_verified_download_then_tampering_fails(
    registry: Registry[WeightSpec], source: Path
) -> None:
    add(registry, source=source.as_uri(), sha256=None)
    assert weights.hash_status("toy") == "unpinned"
    assert not weights.verify("toy").present
    path = weights.fetch("toy")
    pins = json.loads((weights.home_dir() / "pins.json").read_text())
    assert pins["toy"]["sha256"] == PAYLOAD_SHA
    assert weights.hash_status("toy") == "pinned" and weights.pinned_sha256("toy") == PAYLOAD_SHA
    result = weights.verify("toy")
    assert result.ok and result.pinned and result.sha256 == PAYLOAD_SHA

    path.write_bytes(PAYLOAD[:-1] + b"X")
    result = weights.verify("toy")
    assert result.present and not result.ok and PAYLOAD_SHA in result.detail
    assert weights.fetch("toy").read_bytes() == PAYLOAD  # the tampered copy is replaced from the source

    source.write_bytes(b"a different upstream file")  # upstream changed: the pin rejects it
    path.unlink()
    with pytest.raises(WeightsError, match=r"pins\.json"):
        weights.fetch("toy")
    assert files_in(weights.home_dir() / "weights") == []


def test_a_prefix_is_checked_and_the_full_hash_pinned(registry: Registry[WeightSpec], source: Path) -> None:
    add(registry, source=source.as_uri(), sha256=None, sha256_prefix=PAYLOAD_SHA[:8])
    assert weights.hash_status("toy") == "prefix"
    weights.fetch("toy")
    assert weights.pinned_sha256("toy") == PAYLOAD_SHA


def test_a_damaged_pins_file_is_an_error(registry: Registry[WeightSpec], source: Path, home: Path) -> None:
    add(registry, source=source.as_uri(), sha256=None)
    home.mkdir(parents=True)
    (home / "pins.json").write_text("{not json")
    with pytest.raises(WeightsError, match=r"pins\.json"):
        weights.fetch("toy")


# ------------------------------------------------------------------------------------------ resolve


@pytest.mark.parametrize(
    ("pin", "shown"),
    [
        ({}, PAYLOAD_SHA),
        ({"sha256": None, "sha256_prefix": "abcdef12"}, "sha256 starting abcdef12"),
        ({"sha256": None}, "not pinned yet"),
    ],
)
def test_a_missing_file_is_one_line_that_says_what_to_do(
    registry: Registry[WeightSpec], source: Path, pin: dict[str, Any], shown: str
) -> None:
    add(registry, source=source.as_uri(), **pin)
    with pytest.raises(WeightsError) as info:
        weights.resolve("toy")
    message = str(info.value)
    assert "\n" not in message
    for part in ("'toy'", str(weights.expected_path("toy")), shown, "tfbench weights fetch toy", "--weights"):
        assert part in message, part


def test_resolve_rejects_a_copy_of_the_wrong_size(registry: Registry[WeightSpec]) -> None:
    add(registry, source="https://example.invalid/toy.pth", size=len(PAYLOAD))
    path = weights.expected_path("toy")
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD[:100])
    with pytest.raises(WeightsError, match=f"100 bytes, expected {len(PAYLOAD)}"):
        weights.resolve("toy")


def test_overrides_parse_and_resolve(registry: Registry[WeightSpec], tmp_path: Path) -> None:
    add(registry, source="https://example.invalid/toy.pth")
    mine = tmp_path / "finetuned.pth"
    mine.write_bytes(b"user checkpoint")
    overrides = weights.parse_overrides([f" toy = {mine} "])
    assert overrides == {"toy": mine}
    assert weights.resolve("toy", overrides) == mine
    with pytest.raises(WeightsError, match=r"--weights toy=.*gone\.pth: no such file"):
        weights.resolve("toy", weights.parse_overrides([f"toy={tmp_path / 'gone.pth'}"]))
    for malformed in ("toy", "=x.pth", "toy="):
        with pytest.raises(WeightsError, match="NAME=PATH"):
            weights.parse_overrides([malformed])
    with pytest.raises(WeightsError, match="more than once"):
        weights.parse_overrides([f"toy={mine}", f"toy={mine}"])
    with pytest.raises(UnknownNameError, match="did you mean 'toy'"):
        weights.parse_overrides([f"tyo={mine}"])


def test_unknown_names_get_a_did_you_mean() -> None:
    with pytest.raises(TfbenchError, match="did you mean 'syncnet_v2'"):
        weights.spec("syncnet_v3")
    with pytest.raises(TfbenchError, match="did you mean 'wav2lip_gan'"):
        weights.resolve("wav2lip_gann")


def test_torch_hub_entries_live_in_the_hub_checkpoints(
    registry: Registry[WeightSpec], tmp_path: Path
) -> None:
    name = "net-0123abcd.pth"
    add(registry, source=f"https://example.invalid/{name}", filename=name, location="torch_hub")
    assert weights.expected_path("toy") == tmp_path / "torch" / "hub" / "checkpoints" / name


def test_specs_are_validated() -> None:
    good: dict[str, Any] = {
        "name": "x",
        "description": "d",
        "filename": "x.pth",
        "format": "f",
        "licence": "",
    }
    for bad in (
        {"source": "ftp://host/x.pth"},
        {"source": "file:///x.pth", "sha256": "ABC"},
        {"source": "file:///x.pth", "sha256": PAYLOAD_SHA, "sha256_prefix": "ffff"},
        {"source": "file:///x.pth", "filename": "../x.pth"},
    ):
        with pytest.raises(ValueError, match="weights entry 'x'"):
            WeightSpec(**{**good, **bad})


# ------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def cli() -> Callable[..., Any]:
    from tfbench.cli.app import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["weights", *args])


def test_cli_list(cli: Callable[..., Any], registry: Registry[WeightSpec], source: Path) -> None:
    add(registry, source=source.as_uri())
    add(registry, "pending", source=source.as_uri(), filename="p.pth", sha256=None)
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert "toy" in result.output and "pending" in result.output and "full sha256" in result.output


def test_cli_list_real_registry(cli: Callable[..., Any]) -> None:
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert "syncnet_v2" in result.output and "lrs2_pairs" in result.output


def test_cli_fetch_path_verify(cli: Callable[..., Any], registry: Registry[WeightSpec], source: Path) -> None:
    add(registry, source=source.as_uri())
    missing = cli("path", "toy")
    assert missing.exit_code == 1 and "tfbench weights fetch toy" in missing.output
    assert cli("verify").exit_code == 0  # nothing present: nothing to fail
    assert cli("verify", "toy").exit_code == 1  # asked for by name and missing

    fetched = cli("fetch", "toy")
    assert fetched.exit_code == 0, fetched.output
    found = cli("path", "toy")
    assert found.exit_code == 0 and found.stdout.strip() == str(weights.expected_path("toy"))
    assert cli("verify").exit_code == 0

    weights.expected_path("toy").write_bytes(b"tampered")
    assert cli("verify").exit_code == 1
