"""The one registry shape for adapter families (channel kinds, address verifiers, carriers,
downstream targets): a name maps to a factory that builds the adapter when it is asked for, so
settings are read per call and a vendor's module is imported only when it is used.

    CARRIERS: Registry[str, Carrier] = Registry("carrier", missing=unknown_carrier)
    CARRIERS.register("local", lazy("fulfillment.carriers.local", "LocalCarrier", call=True))
    CARRIERS.create("local")  # a new LocalCarrier

Another app adds to a family from its ``ready()`` with ``register``; nothing imports upward.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from importlib import import_module
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def lazy(module: str, attribute: str, *, call: bool = False) -> Callable[[], Any]:
    """A factory that imports ``module`` on first use and returns its ``attribute`` (a dotted
    path inside the module, e.g. ``"Adapter.from_settings"``), called with no arguments when
    ``call`` is set (a class or a builder)."""

    def factory() -> Any:
        value: Any = import_module(module)
        for part in attribute.split("."):
            value = getattr(value, part)
        return value() if call else value

    factory.__qualname__ = f"lazy[{module}.{attribute}]"
    return factory


class Registry(Generic[K, T]):
    """Named factories of one family. ``missing(name)`` is the exception for an unknown name
    (each family says it in its own words and error class)."""

    def __init__(self, family: str, *, missing: Callable[[K], Exception]) -> None:
        self.family = family
        self._missing = missing
        self._factories: dict[K, Callable[[], T]] = {}

    def register(self, name: K, factory: Callable[[], T]) -> None:
        """Make ``factory()`` the adapter for ``name`` (a later registration replaces it)."""
        self._factories[name] = factory

    def unregister(self, name: K) -> Callable[[], T] | None:
        """Forget ``name``; return its factory (to restore it), or None."""
        return self._factories.pop(name, None)

    def names(self) -> list[K]:
        """The registered names, in registration order."""
        return list(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def create(self, name: K) -> T:
        """A new adapter for ``name``; the family's ``missing`` error when nobody answers."""
        factory = self._factories.get(name)
        if factory is None:
            raise self._missing(name)
        return factory()
