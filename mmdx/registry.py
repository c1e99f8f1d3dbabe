"""One registry style for every extension point of mmdx.

Each extension point (encoders, fusions, training strategies, explanation methods, audit sections,
importers, exporters) keeps a :class:`Registry` of *spec* objects: small frozen dataclasses with a ``name``
and whatever the point needs (a builder, a description, settings). An entry is registered in the module
that defines it, and the registry's own module imports those modules explicitly, so the list is complete
without relying on who imported what first. Everything else — configs, the command line, benchmarks,
tests that loop over every entry — asks the registry with :meth:`Registry.names` or
:meth:`Registry.specs`, never keeps a list of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from mmdx.errors import look_up_option


class Named(Protocol):
    @property
    def name(self) -> str: ...


SpecT = TypeVar("SpecT", bound=Named)


class Registry(Generic[SpecT]):
    """Named specs of one kind, in registration order.

    >>> FUSIONS: Registry[FusionSpec] = Registry("fusion")
    >>> FUSIONS.register(FusionSpec("concat", ConcatFusion, "concatenate the modality vectors"))
    >>> FUSIONS.get("concat").build
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._specs: dict[str, SpecT] = {}

    def register(self, spec: SpecT) -> SpecT:
        """Add ``spec``; a second entry with the same name is a programming error."""
        if spec.name in self._specs:
            raise ValueError(f"{self.kind} '{spec.name}' is registered twice")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> SpecT:
        """The spec called ``name``; an unknown name raises ``MmdxError`` with the choices and a suggestion."""
        return self._specs[look_up_option(name, self._specs, what=self.kind)]

    def names(self) -> list[str]:
        return list(self._specs)

    def specs(self) -> list[SpecT]:
        return list(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[SpecT]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)
