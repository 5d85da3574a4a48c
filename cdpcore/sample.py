"""Seeded synthetic customer profiles, for the benchmarks and `cdp demo`.

Every profile has the attributes a CDP user expects (see `SCHEMA`): age, gender,
country, a skewed city, signup time, lifetime value, orders count, subscriber flag,
plan, interest tags and last seen time, with realistic null rates.

Generation is vectorised (numpy) and deterministic: the attributes of profile number
`i` depend only on `(seed, i)`, never on how the range is cut into batches, so
`generate_columns(n, seed, start)` is exactly the slice `[start, start + n)` of one
long sequence. (Rows are produced in blocks of `BLOCK` with one random stream per
block; a call generates the blocks that cover its range.)

Two output forms, holding the same data:

- `generate_columns` → `(ids, columns)` in the forms `Store.upsert_columns` accepts:
  plain numpy arrays for always-present numbers and bools, `numpy.ma.MaskedArray` for
  nullable numbers and timestamps (timestamps are `datetime64[us]`), `Categorical` for
  string fields (code -1 = null) and `TagSets` for the string_set field.
- `generate_rows` → a list of dicts for `Store.upsert`: `None` for nulls, timestamps as
  naive ISO-8601 strings (UTC), tags as lists of strings.

Timestamps are whole seconds at or before `REF_NOW`, a fixed instant, so queries such
as "not seen for 14 days" have a fixed answer: write them against `REF_NOW`
(e.g. `last_seen < '2026-10-18'`), not against the wall clock's `now()`.
"""
from __future__ import annotations

import datetime as _dt
import gc
from typing import Any, Iterator

import numpy as np

from .batch import Categorical, TagSets

__all__ = [
    "SCHEMA", "REF_NOW", "BLOCK", "GENDERS", "COUNTRIES", "CITIES", "CITY_COUNTRY",
    "PLANS", "INTERESTS", "make_ids", "generate_columns", "generate_rows",
    "columns_to_rows", "batches",
]

SCHEMA: dict[str, str] = {
    "age": "int",
    "gender": "string",
    "country": "string",
    "city": "string",
    "signup_ts": "timestamp",
    "lifetime_value": "float",
    "orders_count": "int",
    "is_subscriber": "bool",
    "plan": "string",
    "interests": "string_set",
    "last_seen": "timestamp",
}

#: The instant the synthetic data is "as of": every timestamp is at or before it.
REF_NOW = _dt.datetime(2026, 11, 1, tzinfo=_dt.timezone.utc)
_REF_NOW_S = int(REF_NOW.timestamp())
_SIGNUP_FROM_S = int(_dt.datetime(2016, 1, 1, tzinfo=_dt.timezone.utc).timestamp())

#: Rows per random stream; the data of row i depends only on (seed, i // BLOCK, i % BLOCK).
BLOCK = 1 << 16

# ---- value domains ---------------------------------------------------------------------

GENDERS: list[str] = ["female", "male", "other"]
_GENDER_P = np.array([0.50, 0.46, 0.04])
_GENDER_NULL = 0.03

# (ISO code, share of profiles, well-known cities in rough order of size)
_COUNTRY_TABLE: list[tuple[str, float, list[str]]] = [
    ("US", 0.300, ["New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia",
                   "San Antonio", "San Diego", "Dallas", "San Jose", "Austin", "San Francisco",
                   "Seattle", "Denver", "Boston", "Miami", "Atlanta", "Portland", "Sacramento",
                   "Santa Monica"]),
    ("JP", 0.120, ["Tokyo", "Osaka", "Yokohama", "Nagoya", "Sapporo", "Fukuoka", "Kobe", "Kyoto",
                   "Kawasaki", "Saitama", "Hiroshima", "Sendai"]),
    ("GB", 0.070, ["London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Liverpool",
                   "Edinburgh", "Bristol"]),
    ("DE", 0.060, ["Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt", "Stuttgart",
                   "Düsseldorf", "Leipzig"]),
    ("FR", 0.050, ["Paris", "Marseille", "Lyon", "Toulouse", "Nice", "Nantes", "Strasbourg",
                   "Bordeaux"]),
    ("BR", 0.050, ["São Paulo", "Rio de Janeiro", "Brasília", "Salvador", "Fortaleza",
                   "Belo Horizonte", "Santos"]),
    ("CA", 0.040, ["Toronto", "Montreal", "Vancouver", "Calgary", "Ottawa", "Edmonton"]),
    ("IN", 0.040, ["Mumbai", "Delhi", "Bangalore", "Hyderabad", "Chennai", "Kolkata", "Pune"]),
    ("MX", 0.030, ["Mexico City", "Guadalajara", "Monterrey", "Puebla", "Tijuana",
                   "San Luis Potosí"]),
    ("AU", 0.030, ["Sydney", "Melbourne", "Brisbane", "Perth", "Adelaide"]),
    ("ES", 0.025, ["Madrid", "Barcelona", "Valencia", "Seville", "Zaragoza", "San Sebastián",
                   "Santander"]),
    ("IT", 0.025, ["Rome", "Milan", "Naples", "Turin", "Palermo", "Florence", "Sanremo"]),
    ("KR", 0.020, ["Seoul", "Busan", "Incheon", "Daegu"]),
    ("NL", 0.015, ["Amsterdam", "Rotterdam", "The Hague", "Utrecht"]),
    ("CL", 0.012, ["Santiago", "Valparaíso", "Concepción"]),
    ("AR", 0.012, ["Buenos Aires", "Córdoba", "Rosario", "San Miguel de Tucumán"]),
    ("CO", 0.010, ["Bogotá", "Medellín", "Cali", "Barranquilla"]),
    ("SE", 0.010, ["Stockholm", "Gothenburg", "Malmö"]),
    ("PL", 0.010, ["Warsaw", "Kraków", "Łódź", "Wrocław"]),
    ("TR", 0.010, ["Istanbul", "Ankara", "Izmir"]),
    ("ID", 0.010, ["Jakarta", "Surabaya", "Bandung"]),
    ("PH", 0.010, ["Manila", "Quezon City", "Davao", "San Fernando"]),
    ("ZA", 0.008, ["Johannesburg", "Cape Town", "Durban"]),
    ("NG", 0.008, ["Lagos", "Abuja", "Kano"]),
    ("EG", 0.006, ["Cairo", "Alexandria", "Giza"]),
    ("SG", 0.006, ["Singapore"]),
    ("CH", 0.006, ["Zurich", "Geneva", "Basel"]),
    ("BE", 0.006, ["Brussels", "Antwerp", "Ghent"]),
    ("IE", 0.005, ["Dublin", "Cork", "Galway"]),
    ("NZ", 0.005, ["Auckland", "Wellington", "Christchurch"]),
]
_N_CITIES = 1000
_CITY_ZIPF = 1.1      # within a country, city of rank r has weight r ** -_CITY_ZIPF
_CITY_NULL = 0.02

_TAIL_PREFIX = ["Ash", "Bel", "Cor", "Dun", "Elm", "Fair", "Glen", "Har", "Iver", "Kings",
                "Lin", "Mar", "Nor", "Oak", "Pem", "Quin", "Ros", "Stan", "Tor", "Ver",
                "Wen", "York", "Hol", "Brad"]
_TAIL_SUFFIX = ["ford", "field", "ton", "wood", "bridge", "port", "dale", "mouth", "ham",
                "wick", "by", "stead", "haven", "moor"]
_TAIL_QUALIFIER = ["", "North ", "East ", "Upper ", "West ", "Little "]


def _tail_names(count: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    for q in _TAIL_QUALIFIER:
        for s in _TAIL_SUFFIX:
            for p in _TAIL_PREFIX:
                name = f"{q}{p}{s}"
                if name not in taken:
                    out.append(name)
                    if len(out) == count:
                        return out
    raise AssertionError("not enough generated city names")


def _build_geo() -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(countries, cities, country index of each city, P(city)) — constant, seed-free."""
    countries = [c for c, _, _ in _COUNTRY_TABLE]
    shares = np.array([s for _, s, _ in _COUNTRY_TABLE])
    shares = shares / shares.sum()
    named = [name for _, _, names in _COUNTRY_TABLE for name in names]
    n_tail = _N_CITIES - len(named)
    # Generated tail cities dealt to countries in proportion to their share (3+ each).
    per = np.maximum(3, np.floor(shares * n_tail)).astype(int)
    per[0] += n_tail - per.sum()
    tail = iter(_tail_names(n_tail, set(named)))
    cities: list[str] = []
    city_country: list[int] = []
    probs: list[np.ndarray] = []
    for ci, (_, _, names) in enumerate(_COUNTRY_TABLE):
        block = list(names) + [next(tail) for _ in range(per[ci])]
        w = np.arange(1, len(block) + 1, dtype=np.float64) ** -_CITY_ZIPF
        probs.append(shares[ci] * w / w.sum())
        cities.extend(block)
        city_country.extend([ci] * len(block))
    assert len(cities) == _N_CITIES and len(set(cities)) == _N_CITIES
    return countries, cities, np.array(city_country, dtype=np.int32), np.concatenate(probs)


COUNTRIES, CITIES, CITY_COUNTRY, CITY_P = _build_geo()
"""CITY_P[i]: probability of CITIES[i] before nulls (its country's share times a Zipf
weight within the country); CITY_COUNTRY[i]: index in COUNTRIES of its country."""

PLANS: list[str] = ["free", "basic", "pro", "enterprise"]
_PLAN_P = np.array([0.55, 0.25, 0.15, 0.05])
_PLAN_NULL = 0.10

INTERESTS: list[str] = ["travel", "cooking", "fitness", "music", "movies", "running", "reading",
                        "fashion", "gaming", "photography", "hiking", "yoga", "football",
                        "cycling", "tennis", "golf", "wine", "gardening", "ski", "swimming"]
# Independent per-tag probabilities (skewed), at most _MAX_TAGS kept per profile.
_INTEREST_P = np.round(0.32 * np.arange(1, len(INTERESTS) + 1) ** -0.75, 4)
_MAX_TAGS = 5
_INTERESTS_NULL = 0.08

_AGE_NULL = 0.05
_LAST_SEEN_NULL = 0.30
_SUBSCRIBER_P = 0.35


# ---- ids -------------------------------------------------------------------------------

def make_ids(n: int, start: int = 0) -> list[str]:
    """`["u00000000", "u00000001", ...]` for profiles start .. start + n - 1.

    Eight digits, more when the numbers need them. Built chunk by chunk as one ASCII
    buffer split in C, which beats formatting ten million strings one by one.
    """
    width = max(8, len(str(start + n - 1)))
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    out: list[str] = []
    for lo in range(start, start + n, BLOCK):
        k = min(BLOCK, start + n - lo)
        m = np.empty((k, width + 2), dtype=np.uint8)
        m[:, 0] = ord("u")
        m[:, -1] = ord(" ")
        m[:, 1:-1] = np.arange(lo, lo + k, dtype=np.int64)[:, None] // powers % 10 + ord("0")
        out += m.tobytes().decode("ascii").split()
    return out


# ---- generation --------------------------------------------------------------------------

def _alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table for sampling index i with probability p[i] in O(1)."""
    k = len(p)
    scaled = p * k / p.sum()
    prob = np.ones(k)
    alias = np.arange(k)
    small = [i for i in range(k) if scaled[i] < 1.0]
    large = [i for i in range(k) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return prob, alias.astype(np.int32)


_CITY_ALIAS = _alias_table(CITY_P)


def _alias_draw(table: tuple[np.ndarray, np.ndarray], u: np.ndarray) -> np.ndarray:
    prob, alias = table
    x = u * len(prob)
    k = x.astype(np.int32)
    np.minimum(k, len(prob) - 1, out=k)
    return np.where(x - k < prob[k], k, alias[k])


def _pick(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index i with probability p[i] (few categories): count the cdf steps below u."""
    out = np.zeros(u.shape, dtype=np.int32)
    for c in np.cumsum(p)[:-1]:
        out += u >= c
    return out


def _block(seed: int, b: int) -> dict[str, np.ndarray]:
    """Final arrays for rows [b * BLOCK, (b + 1) * BLOCK) of the sequence for `seed`.

    Tags come as `tag_counts` (per row, 0 for a null set) and `tag_codes` (flat).
    """
    rng = np.random.default_rng([seed, b])
    n = BLOCK
    out: dict[str, np.ndarray] = {}

    def u() -> np.ndarray:
        return rng.random(n)

    age = rng.standard_normal(n, dtype=np.float32) * np.float32(14.0) + np.float32(40.0)
    age = np.where(age < 18, 18 + 12 * rng.random(n, dtype=np.float32), age)  # adults only
    out["age"] = np.minimum(age, 95).astype(np.int64)
    out["age_null"] = u() < _AGE_NULL

    out["gender"] = np.where(u() < _GENDER_NULL, -1, _pick(_GENDER_P, u())).astype(np.int32)

    city = _alias_draw(_CITY_ALIAS, u())
    out["country"] = CITY_COUNTRY[city]
    out["city"] = np.where(u() < _CITY_NULL, -1, city).astype(np.int32)

    # Signups grow over time: u ** 0.6 puts more of them near REF_NOW.
    span = _REF_NOW_S - _SIGNUP_FROM_S
    signup = _SIGNUP_FROM_S + (u() ** 0.6 * span).astype(np.int64)
    out["signup_s"] = signup

    # Orders: geometric-like with a heavy tail (per-customer rate is itself exponential).
    rate = rng.standard_exponential(n, dtype=np.float32) * np.float32(3.0)
    orders = (rng.standard_exponential(n, dtype=np.float32) * rate).astype(np.int64)
    basket = np.exp(rng.standard_normal(n, dtype=np.float32) * np.float32(0.7)
                    + np.float32(np.log(45.0)))
    out["orders_count"] = orders
    out["lifetime_value"] = np.round(orders * basket.astype(np.float64), 2)

    out["is_subscriber"] = u() < _SUBSCRIBER_P

    out["plan"] = np.where(u() < _PLAN_NULL, -1, _pick(_PLAN_P, u())).astype(np.int32)

    tags = rng.random((n, len(INTERESTS)), dtype=np.float32) < _INTEREST_P.astype(np.float32)
    tags_null = u() < _INTERESTS_NULL
    tags[tags_null] = False   # a null set holds no tags
    counts = np.count_nonzero(tags, axis=1)
    over = np.flatnonzero(counts > _MAX_TAGS)
    if over.size:   # keep the first _MAX_TAGS tags of the rare rows that drew more
        sub = tags[over]
        sub &= np.cumsum(sub, axis=1) <= _MAX_TAGS
        tags[over] = sub
        counts[over] = _MAX_TAGS
    out["tags_null"] = tags_null
    out["tag_counts"] = counts
    out["tag_codes"] = np.nonzero(tags)[1].astype(np.int8)   # row-major: grouped by row

    ago = (rng.standard_exponential(n, dtype=np.float32) * np.float32(45 * 86400.0)).astype(np.int64)
    out["last_seen_s"] = np.maximum(signup, _REF_NOW_S - ago)
    out["last_seen_null"] = u() < _LAST_SEEN_NULL
    return out


def _raw(n: int, seed: int, start: int) -> dict[str, np.ndarray]:
    """The arrays of rows [start, start + n), assembled from whole blocks."""
    if n < 0 or start < 0:
        raise ValueError("n and start must be >= 0")
    if n == 0:
        return {k: v[:0].copy() for k, v in _block(seed, 0).items()}
    out: dict[str, np.ndarray] = {}
    codes: list[np.ndarray] = []
    for b in range(start // BLOCK, (start + n + BLOCK - 1) // BLOCK):
        lo = max(start, b * BLOCK) - b * BLOCK
        hi = min(start + n, (b + 1) * BLOCK) - b * BLOCK
        blk = _block(seed, b)
        c = blk.pop("tag_codes")
        ends = np.cumsum(blk["tag_counts"])
        codes.append(c[ends[lo] - blk["tag_counts"][lo]:ends[hi - 1]])
        at = max(start, b * BLOCK) - start
        for k, v in blk.items():
            if k not in out:
                out[k] = np.empty(n, dtype=v.dtype)
            out[k][at:at + hi - lo] = v[lo:hi]
    out["tag_codes"] = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int8)
    return out


def _ts(seconds: np.ndarray) -> np.ndarray:
    return (seconds * 1_000_000).astype("datetime64[us]")


def generate_columns(n: int, seed: int = 42, start: int = 0) -> tuple[list[str], dict[str, object]]:
    """Profiles start .. start + n - 1 as `(ids, columns)` for `Store.upsert_columns`."""
    r = _raw(n, seed, start)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(r["tag_counts"], out=offsets[1:])
    cols: dict[str, object] = {
        "age": np.ma.MaskedArray(r["age"], mask=r["age_null"]),
        "gender": Categorical(r["gender"].astype(np.int32), GENDERS),
        "country": Categorical(r["country"].astype(np.int32), COUNTRIES),
        "city": Categorical(r["city"].astype(np.int32), CITIES),
        "signup_ts": _ts(r["signup_s"]),
        "lifetime_value": r["lifetime_value"],
        "orders_count": r["orders_count"],
        "is_subscriber": r["is_subscriber"],
        "plan": Categorical(r["plan"].astype(np.int32), PLANS),
        "interests": TagSets(offsets, r["tag_codes"], INTERESTS, r["tags_null"]),
        "last_seen": np.ma.MaskedArray(_ts(r["last_seen_s"]), mask=r["last_seen_null"]),
    }
    return make_ids(n, start), cols


def _iso(ts: np.ndarray) -> list[str]:
    return ts.astype("datetime64[s]").astype(str).tolist()


def columns_to_rows(ids: list[str], cols: dict[str, object]) -> list[dict[str, Any]]:
    """The dict form of `(ids, cols)` as produced by `generate_columns`.

    Nulls become None; timestamps naive ISO-8601 strings (UTC, whole seconds); tag sets
    lists of strings in category order. Columns are converted whole; only the final
    assembly of the dicts is per row.
    """
    # Millions of new containers would trigger the cyclic GC over and over; none of
    # them can form a cycle, so pause it while building.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _columns_to_rows(ids, cols)
    finally:
        if was_enabled:
            gc.enable()


def _columns_to_rows(ids: list[str], cols: dict[str, object]) -> list[dict[str, Any]]:
    n = len(ids)
    lists: dict[str, list[Any]] = {}
    for name, col in cols.items():
        if isinstance(col, Categorical):
            cats = np.array(list(col.categories) + [None], dtype=object)
            lists[name] = cats[col.codes].tolist()       # code -1 picks the trailing None
        elif isinstance(col, TagSets):
            cats = np.array(list(col.categories), dtype=object)
            flat = cats[col.codes].tolist()
            off = col.offsets.tolist()
            null = col.null.tolist() if col.null is not None else [False] * n
            lists[name] = [None if null[i] else flat[off[i]:off[i + 1]] for i in range(n)]
        else:
            arr = np.ma.getdata(col)
            mask = np.ma.getmaskarray(col)
            vals: list[Any] = _iso(arr) if arr.dtype.kind == "M" else arr.tolist()
            if mask.any():
                for i in np.flatnonzero(mask).tolist():
                    vals[i] = None
            lists[name] = vals
    names = ["profile_id", *lists]
    return [dict(zip(names, row)) for row in zip(ids, *lists.values())]


def generate_rows(n: int, seed: int = 42, start: int = 0) -> list[dict[str, Any]]:
    """Profiles start .. start + n - 1 as dicts for `Store.upsert` (same data as the columns)."""
    return columns_to_rows(*generate_columns(n, seed, start))


def batches(n: int, batch_size: int = 1_000_000, seed: int = 42,
            start: int = 0) -> Iterator[tuple[list[str], dict[str, object]]]:
    """`generate_columns` over [start, start + n) in batches of `batch_size`."""
    for lo in range(start, start + n, batch_size):
        yield generate_columns(min(batch_size, start + n - lo), seed, lo)
