"""Attributes of a package that import their module on first use (PEP 562)."""

import importlib
from collections.abc import Callable


def loader(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module-level `__getattr__` for `package` that imports `exports[name]` when `name` is
    first looked up."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
