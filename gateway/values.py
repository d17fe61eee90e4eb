"""Values made per request: frozen to the type checker, native when compiled; ``@value`` for a generic one.

The values made per request (plan entries, candidates, the admission, the features...) are declared so that
mypyc (gateway/compiled.py) makes them native classes: ``@dataclass(init=False, unsafe_hash=True)`` with
``Final`` fields and an ``__init__`` written out. mypy --strict then refuses any assignment to a field outside
``__init__``, compiled code reads and sets the fields in C (a dataclass-generated ``__init__`` would run as
Python, and mypyc makes a class with any other decorator an ordinary Python class), and they compare and hash
by field values.

``Final`` cannot depend on a type variable, so a generic value (``walk.Answer``) takes ``@value`` instead: at
run time a slotted dataclass that hashes like a frozen one (``unsafe_hash``), not frozen itself, whose
``__init__`` assigns slots (a frozen dataclass's goes through ``object.__setattr__``, four times slower).
Values made rarely (configuration, policies) stay ``@dataclass(frozen=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def value(cls: type[T]) -> type[T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
