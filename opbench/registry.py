"""A registry of named instances (the ops, the backends): one per name, found by name with the known names in the
error, and the members of a package imported so that their modules register them."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    """name -> instance; `kind` names what it holds in errors ("op", "backend")."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def decorator(self) -> Callable[[type], type]:
        """A class decorator that registers one instance of the class under its `name`."""

        def register(cls: type) -> type:
            if cls.name in self:
                raise ValueError(
                    f"{self.kind} {cls.name!r} registered twice ({type(self[cls.name]).__name__} and {cls.__name__})"
                )
            self[cls.name] = cls()
            return cls

        return register

    def get_named(self, name: str) -> T:
        try:
            return self[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r} (known: {', '.join(sorted(self))})") from None


def import_members(package: str, path: Iterable[str], skip: tuple[str, ...] = ()) -> list[Any]:
    """Import every module and subpackage of a package (its `__path__`) but `skip`: each registers what it defines."""
    return [importlib.import_module(f"{package}.{m.name}") for m in pkgutil.iter_modules(path) if m.name not in skip]
