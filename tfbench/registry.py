"""One generic name -> object registry used for models, metrics, datasets, detectors and weights.

Registration is explicit (a decorator or `add`), names may have aliases, third-party packages add entries
through a named entry-point group, and an unknown name is answered with the closest known names.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from tfbench.errors import TfbenchError

T = TypeVar("T")


class UnknownNameError(TfbenchError, KeyError):
    """Raised for a name that no entry of a registry carries; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """A typed mapping from names (and aliases) to objects, filled by decorators and entry-point plugins.

    `kind` names what the registry holds ("model", "metric") and appears in error messages.
    `entry_point_group`, when given, is read once, on the first lookup, so importing tfbench stays cheap.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._plugins_loaded = entry_point_group is None
        self._lock = threading.Lock()

    def add(self, name: str, obj: T, aliases: tuple[str, ...] = ()) -> T:
        """Register `obj` under `name` and its aliases; a name already taken is an error."""
        with self._lock:
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    raise ValueError(f"{self.kind} {key!r} is already registered")
            self._entries[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
        return obj

    def register(self, name: str, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator form of `add`: `@MODELS.register("wav2lip")`."""

        def decorate(obj: T) -> T:
            return self.add(name, obj, aliases)

        return decorate

    def get(self, name: str) -> T:
        """The entry called `name` (or an alias of it); an unknown name raises `UnknownNameError`."""
        self._load_plugins()
        key = self._aliases.get(name, name)
        if key not in self._entries:
            known = sorted([*self._entries, *self._aliases])
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint} (known: {', '.join(known) or 'none'})"
            )
        return self._entries[key]

    def canonical(self, name: str) -> str:
        """The registered name that `name` (possibly an alias) stands for."""
        self.get(name)
        return self._aliases.get(name, name)

    def names(self) -> list[str]:
        """Registered names (without aliases), sorted."""
        self._load_plugins()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, entry) pairs, sorted by name."""
        for name in self.names():
            yield name, self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries or name in self._aliases

    def __len__(self) -> int:
        return len(self.names())

    def _load_plugins(self) -> None:
        """Import every entry point of the group once; a broken plugin is an error naming it, not a skip."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        assert self.entry_point_group is not None
        for ep in entry_points(group=self.entry_point_group):
            if ep.name in self._entries or ep.name in self._aliases:
                continue
            try:
                obj = ep.load()
            except Exception as exc:
                raise ImportError(
                    f"{self.kind} plugin {ep.name!r} ({ep.value}) from group {self.entry_point_group!r} "
                    f"failed to load: {exc}"
                ) from exc
            if ep.name not in self._entries:  # the module may have registered itself while loading
                self.add(ep.name, obj)
