"""A small name -> factory registry, used for models, optimizers and schedules."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from reslab.errors import ReslabError

T = TypeVar("T")


class UnknownNameError(ReslabError, KeyError):
    """Lookup of a name that was never registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to factories plus free-form metadata; refuses duplicates, suggests near misses."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, factory: Callable[..., T] | None = None, **meta: Any):
        """Register ``factory`` under ``name``; usable directly or as a decorator."""

        def add(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = Entry(name, fn, dict(meta))
            return fn

        return add(factory) if factory is not None else add

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.names())}"
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}") from None

    def get(self, name: str) -> Callable[..., T]:
        return self.entry(name).factory

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
