"""Schema represents the typed fields a store holds: declared up front or inferred.

One Schema is shared by every shard of a store, so all shards agree on types; it is
changed only through `declare` and `infer`, which never change an existing field's type.
"""
from __future__ import annotations

import datetime as _dt
import re
import threading
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import SchemaError

ID_FIELD = "profile_id"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class FieldType(str, Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    TIMESTAMP = "timestamp"
    STRING_SET = "string_set"

    @property
    def is_numeric(self) -> bool:
        return self in (FieldType.INT, FieldType.FLOAT)

    @property
    def is_categorical(self) -> bool:
        """Fields stored as dictionary codes with a bitmap per value (groupable)."""
        return self in (FieldType.STRING, FieldType.STRING_SET, FieldType.BOOL)


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType


def parse_type(value: str | FieldType, field: str) -> FieldType:
    try:
        return FieldType(value)
    except ValueError:
        names = ", ".join(t.value for t in FieldType)
        raise SchemaError(f"field {field!r}: unknown type {value!r} (one of {names})", field) from None


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SchemaError(
            f"invalid field name {name!r}: use letters, digits and _, not starting with a digit", None)
    if name == ID_FIELD:
        raise SchemaError(f"{ID_FIELD!r} is the profile key, not a field", name)
    return name


def infer_type(value: Any) -> FieldType | None:
    """The type a first-seen value implies; None when it implies nothing (null)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return FieldType.BOOL
    if isinstance(value, (int, np.integer)):
        return FieldType.INT
    if isinstance(value, (float, np.floating)):
        return FieldType.FLOAT
    if isinstance(value, str):
        return FieldType.STRING
    if isinstance(value, (_dt.datetime, _dt.date, np.datetime64)):
        return FieldType.TIMESTAMP
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return FieldType.STRING_SET
    return None


class Schema:
    """The fields of a store. Safe for concurrent use."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self._fields: dict[str, Field] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, fields: Iterable[Field]) -> "Schema":
        """A schema holding exactly `fields` (a view built for checking, e.g. the
        properties an event condition may name)."""
        out = cls()
        out._fields = {f.name: f for f in fields}
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __getitem__(self, name: str) -> Field:
        return self._fields[name]

    def get(self, name: str) -> Field | None:
        return self._fields.get(name)

    def fields(self) -> list[Field]:
        return list(self._fields.values())

    def names(self) -> list[str]:
        return list(self._fields)

    def to_dict(self) -> dict[str, str]:
        return {f.name: f.type.value for f in self._fields.values()}

    def declare(self, spec: Mapping[str, str | FieldType]) -> list[Field]:
        """Add fields; re-declaring a field with its own type is a no-op.

        Validates the whole spec before adding anything, so a bad entry adds nothing.
        """
        wanted = [Field(check_name(n), parse_type(t, n)) for n, t in spec.items()]
        with self._lock:
            for f in wanted:
                old = self._fields.get(f.name)
                if old is not None and old.type is not f.type:
                    raise SchemaError(
                        f"field {f.name!r} is already {old.type.value}, cannot redeclare as {f.type.value}",
                        f.name)
            added = [f for f in wanted if f.name not in self._fields]
            for f in added:
                self._fields[f.name] = f
        return added

    def check_new_name(self, name: Any) -> None:
        """SchemaError unless a field named `name` may be added (valid name, not strict)."""
        if self.strict:
            raise SchemaError(f"unknown field {name!r} (strict schema)", name if isinstance(name, str) else None)
        check_name(name)

    def infer(self, name: Any, sample: Iterable[Any]) -> Field | None:
        """The field `name` would be from the first non-null value in `sample`.

        Does not declare it: a batch declares new fields only once one of its records
        that gives them a value is accepted. Returns None when every value is null.
        Raises SchemaError for a bad name, an uninferable value, or (strict) any unknown field.
        """
        self.check_new_name(name)
        for value in sample:
            ftype = infer_type(value)
            if ftype is not None:
                return Field(name, ftype)
            if value is not None:
                raise SchemaError(f"field {name!r}: cannot infer a type from {type(value).__name__}", name)
        return None
