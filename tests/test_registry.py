"""registry.py: registration, aliases, did-you-mean errors and entry-point plugins."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from tfbench import registry as registry_module
from tfbench.errors import TfbenchError
from tfbench.registry import Registry, UnknownNameError


def test_register_get_alias_and_listing() -> None:
    reg: Registry[int] = Registry("number")

    @reg.register("one", aliases=("uno",))
    def _one() -> int:
        return 1

    reg.add("two", 2)  # type: ignore[arg-type]
    assert reg.get("uno") is reg.get("one")
    assert reg.canonical("uno") == "one"
    assert reg.names() == ["one", "two"]
    assert "uno" in reg and "three" not in reg
    assert len(reg) == 2


def test_duplicate_names_are_refused() -> None:
    reg: Registry[int] = Registry("number")
    reg.add("one", 1, aliases=("uno",))
    with pytest.raises(ValueError, match="already registered"):
        reg.add("uno", 3)


def test_unknown_name_suggests_close_names() -> None:
    reg: Registry[int] = Registry("model")
    reg.add("wav2lip", 1)
    reg.add("wav2lip_gan", 2)
    with pytest.raises(UnknownNameError, match=r"unknown model 'wav2lp'; did you mean 'wav2lip'") as info:
        reg.get("wav2lp")
    assert isinstance(info.value, TfbenchError)
    with pytest.raises(UnknownNameError, match="known: wav2lip, wav2lip_gan"):
        reg.get("zzz")


def test_entry_point_plugins_load_once_on_first_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_entry_points(group: str) -> list[EntryPoint]:
        calls.append(group)
        return [EntryPoint(name="plugged", value="math:pi", group=group)]

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    reg: Registry[float] = Registry("constant", entry_point_group="tfbench.test")
    assert calls == []  # nothing is imported before the first lookup
    assert reg.get("plugged") == pytest.approx(3.14159, abs=1e-5)
    reg.names()
    assert calls == ["tfbench.test"]


def test_broken_plugin_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_entry_points(group: str) -> list[EntryPoint]:
        return [EntryPoint(name="broken", value="no_such_module_xyz:thing", group=group)]

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    reg: Registry[object] = Registry("model", entry_point_group="tfbench.test")
    with pytest.raises(ImportError, match="plugin 'broken'"):
        reg.names()
