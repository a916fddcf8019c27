"""What the network and augmentation registries share: a name -> entry table that says in one line what is
registered twice or unknown, and the options model of an entry that takes none."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

Entry = TypeVar("Entry")


class NoOptions(BaseModel):
    """An entry's options, validated from params.yaml; this one takes none."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Registry(Generic[Entry]):
    def __init__(self, kind: str):
        self.kind = kind
        self.entries: dict[str, Entry] = {}

    def add(self, name: str, entry: Entry) -> None:
        if name in self.entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self.entries[name] = entry

    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str) -> Entry:
        try:
            return self.entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; allowed: {', '.join(self.entries)}") from None
