"""cdpcore: an in-memory, sharded customer-profile store with an SQL segment language."""
from .batch import Categorical, TagSets
from .errors import (BatchError, CdpError, NotFound, Overloaded, ProfileNotFound, QueryError,
                     RecordError, SchemaError, Unavailable, FailedPrecondition)
from .schema import Field, FieldType, Schema
from .store import DeleteResult, QueryResult, Store, UpsertResult

__all__ = [
    "Store", "UpsertResult", "DeleteResult", "QueryResult", "Schema", "Field", "FieldType",
    "Categorical", "TagSets", "CdpError", "SchemaError", "RecordError", "BatchError",
    "QueryError", "NotFound", "ProfileNotFound", "Overloaded", "Unavailable", "FailedPrecondition",
]
