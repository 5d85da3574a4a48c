"""Strategies represent the random worlds the engine is checked in: schemas, write batches, queries.

Shaped to hit cdpcore's boundaries (STYLE practice 17): small value pools so equality,
IN and has() hit; int64 extremes (exact int sums); timestamps over years 1–9999 and on
the day grid around the fixed `now()`; empty and null sets; duplicate ids inside a
batch; ids in the first and last slot; batch sizes on capacity-doubling edges.

Every condition is generated as a tree and rendered twice, as SQL text for the engine
and as a Kleene predicate for the oracle (`Cond`), so the oracle never sees the parser.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import xxhash
from hypothesis import strategies as st

from oracle import (Agg, Col, Oracle, OrderBy, Output, SelectSpec, and3, between3, bool3,
                    has3, in3, like3, not3, or3, to_datetime)

FIELD_TYPES = ("int", "float", "bool", "string", "timestamp", "string_set")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MIN_US = -62135596800 * 1_000_000           # 0001-01-01T00:00:00Z
MAX_US = 253402300799 * 1_000_000 + 999_999  # 9999-12-31T23:59:59.999999Z
SECOND_US = 1_000_000
MINUTE_US, HOUR_US, DAY_US = 60 * SECOND_US, 3600 * SECOND_US, 86_400 * SECOND_US
FIXED_NOW = 1_773_576_000.0                   # 2026-03-15T12:00:00Z, what the stores' clock says
NOW_US = int(FIXED_NOW) * SECOND_US
SLOTS = 16384


def clock() -> float:
    """The clock every test store gets, so now() is reproducible."""
    return FIXED_NOW


def _id_in_slot(slot: int) -> str:
    i = 0
    while xxhash.xxh64_intdigest(f"s{i}".encode()) % SLOTS != slot:
        i += 1
    return f"s{i}"


ID_POOL = ([f"u{i}" for i in range(16)]
           + ["ü", "O'Neil", "a b", "日本", "x" * 40, "0", "-1", _id_in_slot(0), _id_in_slot(SLOTS - 1)])
profile_ids = st.sampled_from(ID_POOL)

# ----------------------------------------------------------------------------------
# Values, normalised as the oracle holds them.

INT_SPECIALS = [INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, 2**53 + 1, 100,
                127, 128, -128, -129, 32767, 32768, -32768, -32769,         # int columns widen
                2**31 - 1, 2**31, -(2**31), -(2**31) - 1]                   # int8 → 16 → 32 → 64
FLOAT_SPECIALS = [0.0, -0.0, 0.5, -1.5, 0.1, 0.2, 0.3, 1e15, -1e15, 2.0**53, 1e-300, 5e-324, 123.25]
STRING_POOL = ["", "a", "b", "ab", "A", "a%", "_", "O'Brien", "é", "日本", "a b", "San Jose", "san",
               "a\\b"]
STRING_ALPHABET = "abAB'%_ é日\\"
TAG_POOL = ["a", "b", "c", "golf", "ski", "tennis", "O'x", "日", "A", ""]
TS_SPECIALS = [MIN_US, MAX_US, 0, -1, 1, NOW_US, NOW_US - 14 * DAY_US, NOW_US - 14 * DAY_US - 1,
               NOW_US - 14 * DAY_US + 1, NOW_US - 30 * DAY_US, 1_767_225_600 * SECOND_US]  # last: 2026-01-01
YEAR_1960_US, YEAR_2040_US = -315_619_200 * SECOND_US, 2_208_988_800 * SECOND_US

ints = st.one_of(st.integers(-3, 3), st.sampled_from(INT_SPECIALS), st.integers(-1000, 1000),
                 st.integers(INT64_MIN, INT64_MAX))
floats = st.one_of(st.integers(-3, 3).map(float), st.sampled_from(FLOAT_SPECIALS),
                   st.integers(-400, 400).map(lambda i: i / 8),
                   st.floats(-1e15, 1e15, allow_nan=False, allow_infinity=False))
strings = st.one_of(st.sampled_from(STRING_POOL), st.text(STRING_ALPHABET, max_size=4))
timestamps = st.one_of(
    st.sampled_from(TS_SPECIALS),
    st.integers(-40, 40).map(lambda d: NOW_US + d * DAY_US),            # window edges around now()
    st.integers(YEAR_1960_US, YEAR_2040_US).map(lambda us: us - us % SECOND_US),
    st.integers(YEAR_1960_US, YEAR_2040_US),
    st.integers(MIN_US, MAX_US),
)
tag_sets = st.frozensets(st.sampled_from(TAG_POOL), max_size=4)

VALUES = {"int": ints, "float": floats, "bool": st.booleans(), "string": strings,
          "timestamp": timestamps, "string_set": tag_sets}


def values(ftype: str, nullable: bool = True) -> st.SearchStrategy:
    base = VALUES[ftype]
    return st.one_of(st.none(), base, base, base) if nullable else base


# ----------------------------------------------------------------------------------
# Input representations: the many ways a caller may hand the engine one value.

def _aware(us: int, minutes: int) -> _dt.datetime | None:
    """The instant `us` in a fixed-offset zone, or None where that leaves years 1–9999."""
    try:
        return to_datetime(us).astimezone(_dt.timezone(_dt.timedelta(minutes=minutes)))
    except (OverflowError, ValueError):
        return None


@st.composite
def timestamp_input(draw, us: int) -> Any:
    dt = to_datetime(us)
    forms = ["datetime_utc", "datetime_naive", "iso_naive", "iso_z", "numpy", "iso_offset",
             "datetime_offset"]
    if us % SECOND_US == 0:
        forms.append("epoch_int")
    if us % (SECOND_US // 2) == 0:
        forms.append("epoch_float")
    if us % DAY_US == 0:
        forms.append("date")
    form = draw(st.sampled_from(forms))
    if form in ("iso_offset", "datetime_offset"):
        local = _aware(us, draw(st.sampled_from([330, -300, 60, -720])))
        if local is None:
            return dt
        return local.isoformat() if form == "iso_offset" else local
    return {
        "datetime_utc": lambda: dt,
        "datetime_naive": lambda: dt.replace(tzinfo=None),
        "iso_naive": lambda: dt.replace(tzinfo=None).isoformat(),
        "iso_z": lambda: dt.replace(tzinfo=None).isoformat() + "Z",
        "numpy": lambda: np.datetime64(us, "us"),
        "epoch_int": lambda: us // SECOND_US,
        "epoch_float": lambda: us / SECOND_US,
        "date": lambda: dt.date(),
    }[form]()


@st.composite
def value_input(draw, ftype: str, value: Any) -> Any:
    """One normalised value as a dict-path record may carry it."""
    if value is None:
        return None
    if ftype == "timestamp":
        return draw(timestamp_input(value))
    if ftype == "float" and value.is_integer() and abs(value) <= 2**53 and draw(st.booleans()):
        return int(value)                      # int into a float field becomes float
    if ftype == "string_set":
        tags = sorted(value)
        form = draw(st.sampled_from(["list", "reversed", "tuple", "set", "dup"]))
        return {"list": tags, "reversed": tags[::-1], "tuple": tuple(tags), "set": set(tags),
                "dup": tags + tags[:1]}[form]
    return value


# Values no field type accepts: a record carrying one is rejected whole.
BAD_VALUE = {"int": "zz", "float": "zz", "bool": "zz", "string": {"k": 1},
             "timestamp": "not a date", "string_set": {"k": 1}}


# ----------------------------------------------------------------------------------
# Operations: each knows how to apply itself to an engine and an oracle and check the answer.

def _check_write(result, valid: list[dict | None], oracle: Oracle) -> None:
    """Exactly the records marked invalid are rejected (by index); the rest reach the oracle."""
    bad = {i for i, v in enumerate(valid) if v is None}
    got_bad = {tuple(e)[0] for e in result.errors}
    assert got_bad == bad, f"rejected records {sorted(got_bad)}, expected {sorted(bad)}: {result.errors}"
    assert result.accepted == len(valid) - len(bad), (result.accepted, len(valid), bad)
    oracle.upsert(v for v in valid if v is not None)


@dataclass
class UpsertRecords:
    """The dict path; `valid[i]` is record i normalised, or None where it must be rejected."""
    records: list[dict]
    valid: list[dict | None] = field(repr=False)

    def apply(self, store, oracle: Oracle) -> None:
        _check_write(store.upsert([dict(rec) for rec in self.records]), self.valid, oracle)


@dataclass
class UpsertColumns:
    """The columnar path; every listed column sets its field on every row."""
    ids: Any
    columns: dict[str, Any]
    valid: list[dict | None] = field(repr=False)

    def apply(self, store, oracle: Oracle) -> None:
        _check_write(store.upsert_columns(self.ids, self.columns), self.valid, oracle)


@dataclass
class Delete:
    ids: list[str]

    def apply(self, store, oracle: Oracle) -> None:
        r = store.delete(list(self.ids))
        deleted, not_found = oracle.delete(self.ids)
        assert (r.deleted, sorted(r.not_found)) == (deleted, sorted(not_found)), (
            f"delete {self.ids}: got deleted={r.deleted} not_found={r.not_found}, "
            f"expected deleted={deleted} not_found={not_found}")


@dataclass
class Bulk:
    """A large columnar batch from a seeded RNG, sized on capacity-doubling edges.

    String columns draw from `categories` distinct values (code-width edges: int8 holds
    127 codes); `categories` 0 means every row gets its own value.
    """
    n: int
    start: int
    seed: int
    fields: tuple[str, ...]
    categories: int = 4
    schema: dict[str, str] = field(repr=False, default_factory=dict)

    def apply(self, store, oracle: Oracle) -> None:
        ids, columns, valid = self.materialize()
        r = store.upsert_columns(ids, columns)
        assert not r.errors and r.accepted == self.n, (r.accepted, r.errors[:3])
        oracle.upsert(valid)

    def materialize(self):
        rng = np.random.default_rng(self.seed)
        ids = [f"bulk{i}" for i in range(self.start, self.start + self.n)]
        valid = [{"profile_id": pid} for pid in ids]
        columns = {}
        for name in self.fields:
            column, normalised = _bulk_column(rng, self.schema[name], self.n, self.categories)
            columns[name] = column
            for rec, v in zip(valid, normalised):
                rec[name] = v
        return ids, columns, valid


def _bulk_column(rng: np.random.Generator, ftype: str, n: int, categories: int = 4):
    null = rng.random(n) < 0.2
    if ftype == "string":
        from cdpcore.batch import Categorical
        if categories == 0:
            cats = [f"v{i}" for i in range(n)]
            codes = np.where(null, -1, rng.permutation(n))
        else:
            cats = (["a", "b", "日本", "O'Brien"] + [f"v{i}" for i in range(categories)])[:categories]
            codes = np.where(null, -1, rng.integers(0, categories, n))
        return Categorical(codes, cats), [None if c < 0 else cats[c] for c in codes.tolist()]
    if ftype == "string_set":
        from cdpcore.batch import TagSets
        sizes = rng.integers(0, 3, n)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        codes = rng.integers(0, 3, int(offsets[-1]))
        cats = ["a", "golf", "ski"]
        sets = [None if null[i] else frozenset(cats[c] for c in codes[offsets[i]:offsets[i + 1]])
                for i in range(n)]
        return TagSets(offsets, codes, cats, null), sets
    span = (5, 130, 33_000, 2**31 + 5, 2**62)[rng.integers(0, 5)]   # int column width edges
    data = {
        "int": lambda: rng.integers(-span, span + 1, n),
        "float": lambda: rng.integers(-8, 9, n) / 2.0,
        "bool": lambda: rng.random(n) < 0.5,
        "timestamp": lambda: (NOW_US + rng.integers(-40, 41, n) * DAY_US).astype("datetime64[us]"),
    }[ftype]()
    plain = data.view(np.int64).tolist() if ftype == "timestamp" else data.tolist()
    return np.ma.MaskedArray(data, mask=null), [None if m else v for m, v in zip(null.tolist(), plain)]


# ----------------------------------------------------------------------------------
# Schemas and write batches.

field_names = st.from_regex(r"[a-z][a-z_]{0,5}[0-9]", fullmatch=True)  # a digit last: never a keyword


def schemas(min_size: int = 1, max_size: int = 6) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(field_names, st.sampled_from(FIELD_TYPES), min_size=min_size, max_size=max_size)


@st.composite
def record_batches(draw, schema: dict[str, str], min_size: int = 1, max_size: int = 8,
                   poison: bool = True) -> UpsertRecords:
    names = list(schema)
    records, valid = [], []
    for _ in range(draw(st.integers(min_size, max_size))):
        pid = draw(profile_ids)
        named = names if draw(st.booleans()) else draw(
            st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
        raw, norm = {"profile_id": pid}, {"profile_id": pid}
        for name in named:
            norm[name] = draw(values(schema[name]))
            raw[name] = draw(value_input(schema[name], norm[name]))
        if poison and draw(st.integers(0, 9)) == 0:
            bad = draw(st.sampled_from(names + ["profile_id"]))
            if bad == "profile_id":
                del raw["profile_id"]
            else:
                raw[bad] = BAD_VALUE[schema[bad]]
            norm = None
        records.append(raw)
        valid.append(norm)
    return UpsertRecords(records, valid)


_DTYPES = {"int": np.int64, "float": np.float64, "bool": np.bool_, "timestamp": "datetime64[us]"}


@st.composite
def column_input(draw, ftype: str, vals: list, implied: bool = False) -> Any:
    """One column of normalised values in one of the accepted columnar shapes.

    `implied`: only shapes whose dtype or first value implies `ftype` (for inference).
    """
    nulls = [v is None for v in vals]
    if implied:
        return draw(_implied_column(ftype, vals))
    forms = ["list", "masked"] if ftype != "string_set" else ["list", "tagsets"]
    if not any(nulls) and ftype in ("int", "float", "bool", "timestamp"):
        forms.append("array")
    if ftype == "string":
        forms += ["categorical"] + ([] if any(nulls) else ["str_array"])
    if ftype == "timestamp" and not any(nulls):
        forms.append("iso_array")
        if all(v % SECOND_US == 0 for v in vals):
            forms.append("epoch_array")
    if ftype == "float" and not any(nulls) and all(v.is_integer() and abs(v) <= 2**53 for v in vals):
        forms.append("int_array")
    if ftype == "int" and all(v is None or abs(v) < 2**31 for v in vals):
        forms.append("int32_masked")
    form = draw(st.sampled_from(forms))
    dtype = _DTYPES.get(ftype)
    filled = [("" if ftype == "string" else 0) if v is None else v for v in vals]
    if form == "list":
        return [draw(value_input(ftype, v)) for v in vals]
    if form == "array":
        return np.array(filled, dtype=dtype)
    if form == "masked":
        data = np.array(filled, dtype=dtype if ftype != "string" else object)
        return np.ma.MaskedArray(data, mask=np.array(nulls, dtype=bool))
    if form == "int32_masked":
        return np.ma.MaskedArray(np.array(filled, dtype=np.int32), mask=np.array(nulls, dtype=bool))
    if form == "int_array":
        return np.array([int(v) for v in vals], dtype=np.int64)
    if form == "str_array":
        return np.array(vals, dtype=str)
    if form == "iso_array":
        return np.array([to_datetime(v).replace(tzinfo=None).isoformat() for v in vals], dtype=str)
    if form == "epoch_array":
        return np.array([v // SECOND_US for v in vals], dtype=np.int64)
    if form == "categorical":     # categories in any order, perhaps one unused
        cats = sorted({v for v in vals if v is not None}) + draw(st.lists(strings, max_size=1))
        return _categorical(vals, list(dict.fromkeys(draw(st.permutations(cats)))))
    present = sorted({t for v in vals if v for t in v})
    cats = list(dict.fromkeys(draw(st.permutations(present + draw(st.lists(st.sampled_from(TAG_POOL),
                                                                             max_size=1))))))
    return _tag_sets(vals, cats, nulls if any(nulls) or draw(st.booleans()) else None)


def _categorical(vals: list, cats: list[str]):
    from cdpcore.batch import Categorical
    return Categorical(np.array([-1 if v is None else cats.index(v) for v in vals], dtype=np.int64), cats)


def _tag_sets(vals: list, cats: list[str], null: list[bool] | None):
    from cdpcore.batch import TagSets
    lists = [sorted(v) if v else [] for v in vals]
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in lists])]).astype(np.int64)
    codes = np.array([cats.index(t) for tags in lists for t in tags], dtype=np.int32)
    return TagSets(offsets, codes, cats, None if null is None else np.array(null, dtype=bool))


def plain_value(ftype: str, value: Any) -> Any:
    """A normalised value as the plain Python object whose type implies `ftype`."""
    if value is None:
        return None
    if ftype == "timestamp":
        return to_datetime(value)
    return sorted(value) if ftype == "string_set" else value


@st.composite
def _implied_column(draw, ftype: str, vals: list) -> Any:
    nulls = [v is None for v in vals]
    if draw(st.booleans()):
        return [plain_value(ftype, v) for v in vals]
    if ftype == "string":
        return _categorical(vals, sorted({v for v in vals if v is not None}) or ["unused"])
    if ftype == "string_set":
        return _tag_sets(vals, sorted({t for v in vals if v for t in v}), nulls)
    dtype = _DTYPES[ftype]
    return np.ma.MaskedArray(np.array([0 if v is None else v for v in vals], dtype=dtype), mask=nulls)


@st.composite
def column_batches(draw, schema: dict[str, str], min_size: int = 0, max_size: int = 10,
                   poison: bool = True, implied: bool = False) -> UpsertColumns:
    ids = draw(st.lists(profile_ids, min_size=min_size, max_size=max_size))
    named = draw(st.lists(st.sampled_from(list(schema)), unique=True, max_size=len(schema)))
    valid: list[dict | None] = [{"profile_id": pid} for pid in ids]
    columns = {}
    for name in named:
        vals = [draw(values(schema[name])) for _ in ids]
        columns[name] = draw(column_input(schema[name], vals, implied))
        for rec, v in zip(valid, vals):
            rec[name] = v
    lists = [name for name in named if isinstance(columns[name], list)]
    if poison and ids and lists and draw(st.integers(0, 4)) == 0:       # one bad value rejects its row only
        name, i = draw(st.sampled_from(lists)), draw(st.integers(0, len(ids) - 1))
        columns[name][i] = BAD_VALUE[schema[name]]
        valid[i] = None
    if ids and draw(st.booleans()):
        ids = np.array(ids, dtype=str)
    return UpsertColumns(ids, columns, valid)


deletes = st.lists(profile_ids, unique=True, max_size=5).map(Delete)
# a run of bulk-loaded ids: tombstones in the id index, then re-inserts into freed rows
bulk_deletes = st.builds(lambda start, n: Delete([f"bulk{i}" for i in range(start, start + n)]),
                         st.integers(0, 1100), st.sampled_from([1, 100, 700]))
BULK_SIZES = [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025, 2049, 3073]
BULK_CATEGORIES = [1, 4, 9, 127, 128, 129, 300, 0]   # 8/9: small negated IN scans codes


@st.composite
def bulks(draw, schema: dict[str, str]) -> Bulk:
    names = draw(st.lists(st.sampled_from(list(schema)), unique=True, max_size=len(schema)))
    return Bulk(draw(st.sampled_from(BULK_SIZES)), draw(st.integers(0, 1100)),
                draw(st.integers(0, 2**32 - 1)), tuple(names), draw(st.sampled_from(BULK_CATEGORIES)),
                dict(schema))


def operations(schema: dict[str, str], bulk: bool = True) -> st.SearchStrategy:
    ops = [record_batches(schema), record_batches(schema), column_batches(schema), deletes]
    return st.one_of(*ops, *([bulks(schema), bulk_deletes] if bulk else []))


@dataclass
class Scenario:
    schema: dict[str, str]
    ops: list


@st.composite
def scenarios(draw, max_ops: int = 5, bulk: bool = True) -> Scenario:
    schema = draw(schemas())
    first = draw(st.one_of(record_batches(schema), column_batches(schema, min_size=1)))
    return Scenario(schema, [first] + draw(st.lists(operations(schema, bulk), max_size=max_ops - 1)))


def replay(store, oracle: Oracle, scenario: Scenario) -> None:
    """Declare the schema and apply every operation to both, checking each write's answer."""
    store.define_fields(scenario.schema)
    oracle.define(scenario.schema)
    for op in scenario.ops:
        op.apply(store, oracle)


# ----------------------------------------------------------------------------------
# Conditions: (SQL text, Kleene predicate) pairs built as trees.

OR_PREC, AND_PREC, NOT_PREC, LEAF_PREC = 1, 2, 3, 4


@dataclass(frozen=True)
class Cond:
    sql: str
    pred: Callable = field(compare=False)
    prec: int = LEAF_PREC

    def __repr__(self) -> str:
        return f"Cond({self.sql!r})"

    def _repr_pretty_(self, p, cycle) -> None:   # hypothesis prints this in failing examples
        p.text(repr(self))


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _float_sql(x: float) -> str:
    return repr(float(x))


@st.composite
def timestamp_literal(draw, us: int | None = None) -> tuple[str, int]:
    """A timestamp literal in one of the documented forms, with its value in µs.

    Given `us`, renders exactly that instant in a form that can spell it.
    """
    forms = ["iso", "iso_z", "iso_space", "iso_offset", "keyword"]
    if us is None or (us - NOW_US) % MINUTE_US == 0 and abs(us - NOW_US) <= 400 * DAY_US:
        forms.append("now")
    if us is None or us % DAY_US == 0:
        forms.append("date")
    if us is None or us % SECOND_US == 0:
        forms.append("epoch")
    if us is None or us % (SECOND_US // 2) == 0:
        forms.append("epoch_half")
    form = draw(st.sampled_from(forms))
    if form == "now":
        if us is None:
            us = (NOW_US + draw(st.integers(-60, 60)) * DAY_US
                  + draw(st.sampled_from([0, 0, 0, HOUR_US, -90 * MINUTE_US])))
        offset = us - NOW_US
        if offset == 0 and draw(st.booleans()):
            return "now()", NOW_US
        interval = draw(interval_sql(abs(offset)))
        return f"now() {'-' if offset < 0 else '+'} {interval}", us
    us = draw(timestamps) if us is None else us
    if form == "date":
        us -= us % DAY_US
        return sql_string(to_datetime(us).date().isoformat()), us
    if form == "epoch":
        us -= us % SECOND_US
        return str(us // SECOND_US), us
    if form == "epoch_half":
        us -= us % (SECOND_US // 2)
        return _float_sql(us / SECOND_US), us
    naive = to_datetime(us).replace(tzinfo=None)
    if form == "iso_offset":
        local = _aware(us, draw(st.sampled_from([330, -300, 60])))
        return sql_string(local.isoformat() if local else naive.isoformat() + "Z"), us
    text = {"iso": naive.isoformat(), "iso_z": naive.isoformat() + "Z",
            "iso_space": naive.isoformat(sep=" "), "keyword": naive.isoformat(sep=" ")}[form]
    return ("TIMESTAMP " if form == "keyword" else "") + sql_string(text), us


@st.composite
def interval_sql(draw, us: int) -> str:
    """`INTERVAL …` spelling a non-negative whole number of minutes `us`, in DuckDB's forms."""
    days, rest = divmod(us, DAY_US)
    hours, rest = divmod(rest, HOUR_US)
    minutes = rest // MINUTE_US
    forms = [f"'{us // MINUTE_US} minutes'", f"'{us // SECOND_US} seconds'"]
    if us % HOUR_US == 0:
        forms += [f"'{us // HOUR_US} hours'", f"{us // HOUR_US} HOUR"]
    if us % DAY_US == 0:
        forms += [f"'{days} {'day' if days == 1 else 'days'}'", f"'{days} day'", f"{days} DAY",
                  f"'{days}' DAY"]
        if days % 7 == 0:
            forms.append(f"'{days // 7} weeks'")
    elif days and minutes == 0:
        forms.append(f"'{days} days {hours} hours'")
    return "INTERVAL " + draw(st.sampled_from(forms))


_BOOL_SQL = {True: ["TRUE", "true"], False: ["FALSE", "false"]}


def literal_of(ftype: str, value: Any) -> st.SearchStrategy[tuple[str, Any]]:
    """A literal spelling exactly `value` (normalised) for an `ftype` field."""
    if ftype == "int":
        return st.just((str(value), value))
    if ftype == "float":
        return st.just((_float_sql(value), value))
    if ftype == "bool":
        return st.sampled_from(_BOOL_SQL[value]).map(lambda t: (t, value))
    if ftype == "string":
        return st.just((sql_string(value), value))
    return timestamp_literal(value)


def literals(ftype: str, pool: Sequence[Any] = ()) -> st.SearchStrategy[tuple[str, Any]]:
    """(SQL text, value in the field's domain) for a literal compared with an `ftype` field.

    `pool` holds values the data actually has, so equality, IN and ranges hit often.
    """
    if ftype == "int":
        base = st.one_of(
            ints.map(lambda v: (str(v), v)),
            st.integers(-4000, 4000).map(lambda i: (_float_sql(i / 4), i / 4)),   # age > 30.5
            st.integers(-5, 5).map(lambda i: (f"{i}.0", i)))
    elif ftype == "float":
        base = st.one_of(floats.map(lambda v: (_float_sql(v), v)),
                         st.integers(-5, 5).map(lambda i: (str(i), float(i))))
    elif ftype == "bool":
        base = st.booleans().flatmap(lambda b: literal_of("bool", b))
    elif ftype == "string":
        base = strings.map(lambda s: (sql_string(s), s))
    else:
        base = timestamp_literal()
    if not pool:
        return base
    pooled = st.sampled_from(list(pool)).flatmap(lambda v: literal_of(ftype, v))
    return st.one_of(base, pooled, pooled)


def value_pools(rows: Iterable[Mapping[str, Any]], schema: Mapping[str, str], limit: int = 64) -> dict:
    """Per field, up to `limit` distinct values present in `rows` (tags for string_set)."""
    pools: dict[str, set] = {name: set() for name in schema}
    for row in rows:
        for name, value in row.items():
            if name in pools and value is not None and len(pools[name]) < limit:
                pools[name].update(value if schema[name] == "string_set" else [value])
    return {name: sorted(vals, key=repr) for name, vals in pools.items()}


_OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<>": lambda a, b: a != b,
        "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b}


@st.composite
def compare_leaf(draw, name: str, ftype: str, pool: Sequence[Any] = ()) -> Cond:
    op = draw(st.sampled_from(list(_OPS)))
    text, lit = draw(literals(ftype, pool))
    fn = _OPS[op]
    ref = f'"{name}"' if draw(st.integers(0, 7)) == 0 else name      # a quoted identifier
    if draw(st.booleans()):
        return Cond(f"{ref} {op} {text}", lambda r: None if r.get(name) is None else fn(r[name], lit))
    return Cond(f"{text} {op} {ref}", lambda r: None if r.get(name) is None else fn(lit, r[name]))


@st.composite
def between_leaf(draw, name: str, ftype: str, pool: Sequence[Any] = ()) -> Cond:
    (lo_sql, lo), (hi_sql, hi) = draw(literals(ftype, pool)), draw(literals(ftype, pool))
    if draw(st.booleans()):
        return Cond(f"{name} BETWEEN {lo_sql} AND {hi_sql}", lambda r: between3(r.get(name), lo, hi))
    return Cond(f"{name} NOT BETWEEN {lo_sql} AND {hi_sql}",
                lambda r: not3(between3(r.get(name), lo, hi)))


@st.composite
def in_leaf(draw, name: str, ftype: str, pool: Sequence[Any] = ()) -> Cond:
    items = draw(st.lists(literals(ftype, pool), min_size=1, max_size=4))
    text = ", ".join(t for t, _ in items)
    lits = [v for _, v in items]
    if draw(st.booleans()):
        return Cond(f"{name} IN ({text})", lambda r: in3(r.get(name), lits))
    return Cond(f"{name} NOT IN ({text})", lambda r: not3(in3(r.get(name), lits)))


def _patterns_from(pool: Sequence[str]) -> st.SearchStrategy[str]:
    """LIKE patterns made from a present value: a wildcarded prefix, suffix or char, or its case flipped."""
    @st.composite
    def derive(draw):
        text = draw(st.sampled_from(list(pool)))
        i = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["prefix", "suffix", "one", "case"]))
        if kind == "case":                        # LIKE must miss it, ILIKE must hit it
            return text.swapcase()[:i] + "%"
        if kind == "prefix":
            return text[:i] + "%"
        if kind == "suffix":
            return "%" + text[i:]
        return text[:i] + "_" + text[i + 1:] if i < len(text) else text + "%"
    return derive()


like_patterns = st.one_of(st.sampled_from(["%", "", "a%", "%b", "_", "__", "%a%", "San%", "%'%", "%\\%"]),
                          st.text("ab%_A'é ", max_size=5))


@st.composite
def like_leaf(draw, name: str, ftype: str, pool: Sequence[Any] = ()) -> Cond:
    pattern = draw(like_patterns | _patterns_from(pool) if pool else like_patterns)
    negated, ci = draw(st.booleans()), draw(st.booleans())
    op = ("NOT " if negated else "") + ("ILIKE" if ci else "LIKE")
    if negated:
        return Cond(f"{name} {op} {sql_string(pattern)}", lambda r: not3(like3(r.get(name), pattern, ci)))
    return Cond(f"{name} {op} {sql_string(pattern)}", lambda r: like3(r.get(name), pattern, ci))


@st.composite
def is_null_leaf(draw, name: str, ftype: str, pool: Sequence[Any] = ()) -> Cond:
    if draw(st.booleans()):
        return Cond(f"{name} IS NULL", lambda r: r.get(name) is None)
    return Cond(f"{name} IS NOT NULL", lambda r: r.get(name) is not None)


@st.composite
def has_leaf(draw, name: str, ftype: str, pool: Sequence[Any] = ()) -> Cond:
    func = draw(st.sampled_from(["has", "has_any", "has_all"]))
    tags = draw(st.lists(st.sampled_from(list(dict.fromkeys([*pool, *TAG_POOL]))),
                         min_size=1, max_size=1 if func == "has" else 3))
    mode = "all" if func == "has_all" else "any"
    args = ", ".join(sql_string(t) for t in tags)
    return Cond(f"{func}({name}, {args})", lambda r: has3(r.get(name), tags, mode))


def bare_bool_leaf(name: str, ftype: str, pool: Sequence[Any] = ()) -> st.SearchStrategy[Cond]:
    return st.just(Cond(name, lambda r: bool3(r.get(name))))


LEAVES = {
    "int": (compare_leaf, between_leaf, in_leaf, is_null_leaf),
    "float": (compare_leaf, between_leaf, in_leaf, is_null_leaf),
    "bool": (compare_leaf, bare_bool_leaf, bare_bool_leaf, is_null_leaf),
    "string": (compare_leaf, between_leaf, in_leaf, like_leaf, is_null_leaf),
    "timestamp": (compare_leaf, between_leaf, in_leaf, is_null_leaf),
    "string_set": (has_leaf, has_leaf, is_null_leaf),
}
constants = st.sampled_from([Cond("TRUE", lambda r: True), Cond("FALSE", lambda r: False)])


def leaves(schema: dict[str, str], pools: Mapping[str, Sequence[Any]]) -> st.SearchStrategy[Cond]:
    per_field = [leaf(name, ftype, tuple(pools.get(name, ())))
                 for name, ftype in schema.items() for leaf in LEAVES[ftype]]
    return st.one_of(*per_field, constants) if per_field else constants


def _wrap(draw, child: Cond, needed: int) -> str:
    """Parenthesise where precedence needs it, and sometimes where it does not."""
    return f"({child.sql})" if child.prec < needed or draw(st.integers(0, 3)) == 0 else child.sql


@st.composite
def _and_or(draw, children: st.SearchStrategy[Cond], is_and: bool) -> Cond:
    parts = draw(st.lists(children, min_size=2, max_size=3))
    prec = AND_PREC if is_and else OR_PREC
    sql = (" AND " if is_and else " OR ").join(_wrap(draw, c, prec + 1 if is_and else prec) for c in parts)
    preds = [c.pred for c in parts]
    combine = and3 if is_and else or3
    return Cond(sql, lambda r: combine(p(r) for p in preds), prec)


@st.composite
def _not(draw, children: st.SearchStrategy[Cond]) -> Cond:
    child = draw(children)
    return Cond(f"NOT {_wrap(draw, child, NOT_PREC)}", lambda r: not3(child.pred(r)), NOT_PREC)


def conditions(schema: dict[str, str], pools: Mapping[str, Sequence[Any]] | None = None,
               max_leaves: int = 6) -> st.SearchStrategy[Cond]:
    """Random condition trees over `schema`; `pools` (see value_pools) steers literals to the data."""
    return st.recursive(
        leaves(schema, pools or {}),
        lambda children: st.one_of(_and_or(children, True), _and_or(children, False), _not(children)),
        max_leaves=max_leaves)


# ----------------------------------------------------------------------------------
# SELECTs: a spec the oracle evaluates, rendered to SQL for the engine.

@dataclass(frozen=True)
class Query:
    sql: str
    spec: SelectSpec = field(repr=False)

    def __repr__(self) -> str:
        return f"Query({self.sql!r})"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))


def expr_sql(expr: Col | Agg) -> str:
    if isinstance(expr, Col):
        return expr.name
    return f"{expr.func}({'*' if expr.field is None else expr.field})"


def render_select(spec: SelectSpec, where: Cond | None) -> str:
    if spec.outputs is None:
        cols = "*"
    else:
        cols = ", ".join(expr_sql(o.expr) + (f" AS {o.alias}" if o.alias else "") for o in spec.outputs)
    parts = [f"SELECT {cols} FROM profiles"]
    if where is not None:
        parts.append(f"WHERE {where.sql}")
    if spec.group_by:
        parts.append("GROUP BY " + ", ".join(spec.group_by))
    if spec.order_by:
        parts.append("ORDER BY " + ", ".join(_order_sql(spec, o) for o in spec.order_by))
    if spec.limit is not None:
        parts.append(f"LIMIT {spec.limit}")
    if spec.offset is not None:
        parts.append(f"OFFSET {spec.offset}")
    return " ".join(parts)


def _order_sql(spec: SelectSpec, order: OrderBy) -> str:
    text = expr_sql(order.expr)
    if order.by_alias:
        text = next(o.alias for o in spec.outputs if o.expr == order.expr and o.alias)
    text += " DESC" if order.desc else ""
    if order.nulls_first is not None:
        text += " NULLS FIRST" if order.nulls_first else " NULLS LAST"
    return text


def _query(spec: SelectSpec, where: Cond | None) -> Query:
    return Query(render_select(spec, where), spec)


@st.composite
def _order_by(draw, spec_outputs: tuple[Output, ...], exprs: Sequence[Col | Agg]) -> OrderBy:
    expr = draw(st.sampled_from(list(exprs)))
    aliased = any(o.expr == expr and o.alias for o in spec_outputs)
    return OrderBy(expr, draw(st.booleans()), draw(st.sampled_from([None, True, False])),
                   aliased and draw(st.booleans()))


def _aliases(draw, exprs: Sequence[Col | Agg]) -> tuple[Output, ...]:
    return tuple(Output(e, f"alias_no{i}" if draw(st.integers(0, 2)) == 0 else None)
                 for i, e in enumerate(exprs))


limits = st.one_of(st.none(), st.integers(0, 12))


@st.composite
def listing_selects(draw, schema: dict[str, str], pools: Mapping | None = None) -> Query:
    """`SELECT profile_id, fields | * … [ORDER BY] [LIMIT] [OFFSET]`."""
    where = draw(st.none() | conditions(schema, pools))
    names = list(schema)
    if draw(st.integers(0, 5)) == 0:
        outputs = None
        visible: tuple[Output, ...] = ()
    else:
        chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=4)) if names else []
        visible = (Output(Col("profile_id")),) + _aliases(draw, [Col(n) for n in chosen])
        outputs = visible
    orderable = [Col(n) for n in names if schema[n] != "string_set"] + [Col("profile_id")]
    order = draw(st.lists(_order_by(visible, orderable), max_size=2, unique_by=lambda o: o.expr))
    spec = SelectSpec(outputs, where and where.pred, (), tuple(order), draw(limits), draw(limits))
    return _query(spec, where)


def agg_exprs(schema: dict[str, str], exact_only: bool = False) -> list[Agg]:
    out = [Agg("count")]
    for name, ftype in schema.items():
        out.append(Agg("count", name))
        if ftype == "int" or (ftype == "float" and not exact_only):
            out.append(Agg("sum", name))
        if ftype in ("int", "float") and not exact_only:
            out.append(Agg("avg", name))
        if ftype != "string_set":
            out += [Agg("min", name), Agg("max", name)]
    return out


@st.composite
def aggregate_selects(draw, schema: dict[str, str], pools: Mapping | None = None) -> Query:
    """`SELECT count(*), sum(f), avg(f), min(f), max(f) … WHERE …` (one row)."""
    where = draw(st.none() | conditions(schema, pools))
    aggs = draw(st.lists(st.sampled_from(agg_exprs(schema)), min_size=1, max_size=5, unique=True))
    limit, offset = draw(st.sampled_from([(None, None)] * 6 + [(0, None), (1, None), (None, 1), (1, 1)]))
    spec = SelectSpec(_aliases(draw, aggs), where and where.pred, limit=limit, offset=offset)
    return _query(spec, where)


GROUPABLE = ("string", "bool", "string_set")


@st.composite
def group_selects(draw, schema: dict[str, str], pools: Mapping | None = None) -> Query:
    """`SELECT keys…, aggs… GROUP BY keys ORDER BY … LIMIT …`; falls back to aggregates."""
    groupable = [n for n, t in schema.items() if t in GROUPABLE]
    if not groupable:
        return draw(aggregate_selects(schema, pools))
    where = draw(st.none() | conditions(schema, pools))
    keys = draw(st.lists(st.sampled_from(groupable), min_size=1, max_size=2, unique=True))
    aggs = draw(st.lists(st.sampled_from(agg_exprs(schema)), max_size=3, unique=True))
    outputs = _aliases(draw, [Col(k) for k in keys] + aggs)
    exact = [Col(k) for k in keys] + agg_exprs(schema, exact_only=True)
    if draw(st.booleans()):
        order = [OrderBy(Agg("count"), desc=True)]
    else:
        order = draw(st.lists(_order_by(outputs, exact), max_size=2, unique_by=lambda o: o.expr))
    spec = SelectSpec(outputs, where and where.pred, tuple(keys), tuple(order), draw(limits), draw(limits))
    return _query(spec, where)


def selects(schema: dict[str, str], pools: Mapping | None = None) -> st.SearchStrategy[Query]:
    return st.one_of(listing_selects(schema, pools), aggregate_selects(schema, pools),
                     group_selects(schema, pools))


# ----------------------------------------------------------------------------------
# Text the engine must refuse with a QueryError, and token soup it must never crash on.

_BAD_LITERALS = {"int": ["'x'", "TRUE", "'2020-01-01'"], "float": ["'x'", "FALSE"],
                 "bool": ["1", "'x'", "0.5"], "string": ["3", "TRUE", "-1.5"],
                 "timestamp": ["TRUE", "'not a date'", "'2026-13-01'"]}


def ill_typed(schema: dict[str, str]) -> st.SearchStrategy[str]:
    """A condition with one documented error: type mismatch, unknown field/function, bad INTERVAL."""
    options = [st.just("zz_nofield9 = 1"), st.just("nofunc9(1)")]
    for name, ftype in schema.items():
        if ftype in _BAD_LITERALS:
            bad = st.sampled_from(_BAD_LITERALS[ftype])
            options += [bad.map(lambda b, n=name: f"{n} = {b}"), bad.map(lambda b, n=name: f"{b} < {n}"),
                        bad.map(lambda b, n=name: f"{n} NOT IN ({b})"),
                        st.just(f"has({name}, 'a')")]
        if ftype == "string_set":
            options += [st.sampled_from([f"{name} = 'a'", f"{name} IN ('a')", f"{name} LIKE 'a%'"])]
        if ftype not in ("string", "string_set"):
            options.append(st.just(f"{name} LIKE 'a%'"))
        if ftype != "bool":
            options.append(st.just(name))
        if ftype == "timestamp":
            options.append(st.just(f"{name} > now() - INTERVAL '1 month'"))
    return st.one_of(options)


SOUP = ["1", "-2", "1.5", "'a'", "''", "'2026-01-01'", "TRUE", "FALSE", "NULL", "AND", "OR", "NOT", "IN",
        "BETWEEN", "LIKE", "ILIKE", "IS", "(", ")", ",", "=", "!=", "<", ">=", "has(", "has_all(", "now()",
        "INTERVAL", "'1 day'", "count(*)", "sum(", "*", "+", "-", "SELECT", "FROM", "profiles", "WHERE",
        "GROUP BY", "ORDER BY", "LIMIT", "OFFSET", "DESC", "NULLS FIRST", "event_count(", "in_segment(",
        "'30d'", "CAST(", "AS", "::", ";", '"x"', "[", "]", "{", "}", "?", "$1", "/*", "--", "profile_id",
        "TIMESTAMP", "'9999-12-31T23:59:59Z'", "99999999999999999999", "1e400", "E'\\n'", "x'00'", "ALL"]


def token_soup(schema: dict[str, str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(SOUP + list(schema)), max_size=12).map(" ".join)
