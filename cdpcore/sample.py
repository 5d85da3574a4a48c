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

Behavioural events of the same profiles (ids from `make_ids`): `generate_events` (all
at once), `iter_events` (chunks of about `EVENT_CHUNK` events, for 100M+), and
`event_batches` (bounded batches), each yielding the arguments of
`Store.track_columns`: page views, app opens, add-to-carts and purchases (amount,
category) over the year before `REF_NOW`, skewed per profile, denser recently, in
arrival order with some late arrivals. `iter_event_arrays` gives the same events as
raw numpy arrays (profile numbers instead of id strings).
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
    "EVENT_TYPES", "EVENT_CATEGORIES", "EVENT_PROPERTIES", "EVENT_CHUNK",
    "iter_event_arrays", "iter_events", "generate_events", "event_batches", "slice_events",
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
    return _format_ids(np.arange(start, start + n, dtype=np.int64), _id_width(start + n))


def _id_width(n: int) -> int:
    """Digits in the ids of profiles 0 .. n - 1 (eight, more when the numbers need them)."""
    return max(8, len(str(n - 1)))


def _format_ids(numbers: np.ndarray, width: int) -> list[str]:
    """`"u" + number` zero-padded to `width` digits, for every number of an int array."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    out: list[str] = []
    for lo in range(0, len(numbers), BLOCK):
        part = numbers[lo:lo + BLOCK].astype(np.int64, copy=False)
        m = np.empty((len(part), width + 2), dtype=np.uint8)
        m[:, 0] = ord("u")
        m[:, -1] = ord(" ")
        m[:, 1:-1] = part[:, None] // powers % 10 + ord("0")
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


# ---- behavioural events ------------------------------------------------------------------
#
# The model, per profile i (drawn once per (seed, n_profiles)): an activity rate (gamma,
# shape 0.5: many near-idle profiles, a few very active ones), an active period within
# the year before REF_NOW (some profiles start during the year, some churn), a shopper
# factor scaling its cart/purchase shares and an app share among its other events.
# Activity grows through the year (density e^{g·t}), so recent windows are denser.
# Time is handled in "activity space" W(t) = ∫ density, where the events of a profile
# are uniform: the events of a slice [L, R) of W are Poisson(rate · |[L, R) ∩ active|),
# placed uniformly in that overlap. Each output chunk is one slice, so chunks follow
# each other in time and all hold about the same number of events.

#: Event types, in the order of their Categorical codes.
EVENT_TYPES: list[str] = ["page_view", "app_open", "add_to_cart", "purchase"]
_PAGE_VIEW, _APP_OPEN, _ADD_TO_CART, _PURCHASE = range(4)
_CART_P, _PURCHASE_P = 0.13, 0.07          # mean shares; page views 55 %, app opens 25 %
_APP_SHARE = 0.25 / (1 - _CART_P - _PURCHASE_P)

#: Product categories of add_to_cart and purchase events, most popular first.
EVENT_CATEGORIES: list[str] = ["apparel", "shoes", "electronics", "home", "beauty", "books",
                               "sports", "toys", "grocery", "kitchen", "garden", "health",
                               "jewelry", "pet", "baby", "games", "music", "office",
                               "automotive", "outdoor"]
_CATEGORY_CDF = np.cumsum(np.arange(1, 21) ** -0.8) / np.sum(np.arange(1, 21) ** -0.8)
# Median purchase amount per category (lognormal around it, rounded to cents).
_CATEGORY_PRICE = np.array([45, 80, 180, 60, 30, 18, 55, 35, 40, 40, 35, 25, 120, 30, 40,
                            50, 20, 25, 70, 90], dtype=np.float64)
_AMOUNT_SIGMA = 0.8

#: The property types of the generated events (for `Store.track_columns`).
EVENT_PROPERTIES: dict[str, str] = {"amount": "float", "category": "string"}

#: Events per chunk of `iter_events` (a target: chunks hold about this many).
EVENT_CHUNK = 5_000_000

_YEAR_S = 365 * 86400
_YEAR_FROM_S = _REF_NOW_S - _YEAR_S
_GROWTH = float(np.log(3.0))     # activity density on REF_NOW is 3x that a year before
_ACTIVITY_SHAPE = 0.5
_NEW_P, _CHURN_P = 0.20, 0.35    # profiles starting / stopping at a random time of the year
_LATE_P, _LATE_MEAN_S = 0.02, 2 * 86400          # late arrivals: delayed ~2 days ...
_VERY_LATE_P, _VERY_LATE_MAX_S = 0.002, 60 * 86400   # ... or up to 60 days (offline sync)


def _w(x: np.ndarray) -> np.ndarray:
    """Share of a full-year profile's activity before year fraction x (0..1)."""
    return np.expm1(_GROWTH * x) / np.expm1(_GROWTH)


def _w_inv(y: np.ndarray) -> np.ndarray:
    return np.log1p(y * np.expm1(_GROWTH)) / _GROWTH


def _activity(n: int, per_profile: float, seed: int) -> dict[str, np.ndarray]:
    """The per-profile parameters of the event model (float32, n entries each)."""
    rng = np.random.default_rng([seed, 0xE7E7])
    level = rng.gamma(_ACTIVITY_SHAPE, size=n)
    start = np.where(rng.random(n) < _NEW_P, rng.random(n), 0.0)
    end = np.where(rng.random(n) < _CHURN_P, rng.random(n), 1.0)
    lo, hi = _w(np.minimum(start, end)), _w(np.maximum(start, end))
    # Scale so that the expected number of events is exactly n * per_profile.
    rate = level * (n * per_profile / max(float(np.dot(level, hi - lo)), 1e-12))
    shop = np.minimum(rng.gamma(2.0, 0.5, size=n), 3.0)   # mean ~1
    app = rng.beta(0.6, 0.6 * (1 - _APP_SHARE) / _APP_SHARE, size=n)
    return {"rate": rate.astype(np.float32), "lo": lo.astype(np.float32),
            "hi": hi.astype(np.float32), "shop": shop.astype(np.float32),
            "app": app.astype(np.float32)}


def _event_slice(act: dict[str, np.ndarray], seed: int, k: int, slices: int) -> dict[str, Any]:
    """The events of activity slice k of `slices`, in arrival order (raw arrays)."""
    rng = np.random.default_rng([seed, 0xE7E7, k])
    left, right = k / slices, (k + 1) / slices
    a = np.maximum(act["lo"], np.float32(left))
    mass = np.maximum(np.minimum(act["hi"], np.float32(right)) - a, np.float32(0))
    counts = rng.poisson(act["rate"] * mass)
    profile = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    m = len(profile)
    y = np.minimum(a[profile] + rng.random(m) * mass[profile], right)
    arrival = np.minimum(np.floor(_w_inv(y) * _YEAR_S), _YEAR_S).astype(np.int64)
    order = np.argsort(arrival, kind="stable")
    profile, arrival = profile[order], arrival[order]
    kind = _event_types(rng, act["shop"][profile], act["app"][profile])
    category, amount = _event_properties(rng, kind)
    delay = np.where(rng.random(m) < _LATE_P, rng.exponential(_LATE_MEAN_S, m), 0.0)
    very = rng.random(m) < _VERY_LATE_P
    delay[very] = rng.random(int(very.sum())) * _VERY_LATE_MAX_S
    ts = _YEAR_FROM_S + arrival - delay.astype(np.int64)
    return {"profile": profile, "type": kind, "ts": _ts(ts), "amount": amount,
            "category": category}


def _event_types(rng: np.random.Generator, shop: np.ndarray, app: np.ndarray) -> np.ndarray:
    u = rng.random(len(shop), dtype=np.float32)
    purchase = np.float32(_PURCHASE_P) * shop
    shopping = purchase + np.float32(_CART_P) * shop
    kind = np.where(u < shopping, _ADD_TO_CART, _PAGE_VIEW).astype(np.int8)
    kind[u < purchase] = _PURCHASE
    # Above the shopping share, the rest of [0, 1) splits app opens : page views as app : 1-app.
    kind[(u >= shopping) & (u < shopping + (1 - shopping) * app)] = _APP_OPEN
    return kind


def _event_properties(rng: np.random.Generator,
                      kind: np.ndarray) -> tuple[np.ndarray, np.ma.MaskedArray]:
    """(category codes, -1 where absent; amounts, masked except on purchases)."""
    category = np.full(len(kind), -1, dtype=np.int8)
    shopping = np.flatnonzero(kind >= _ADD_TO_CART)
    category[shopping] = np.searchsorted(_CATEGORY_CDF, rng.random(len(shopping)), side="right")
    bought = np.flatnonzero(kind == _PURCHASE)
    amount = np.zeros(len(kind))
    noise = np.exp(rng.standard_normal(len(bought)) * _AMOUNT_SIGMA)
    amount[bought] = np.maximum(np.round(_CATEGORY_PRICE[category[bought]] * noise, 2), 0.5)
    return category, np.ma.MaskedArray(amount, mask=kind != _PURCHASE)


def iter_event_arrays(n_profiles: int, events_per_profile: float = 10, seed: int = 0,
                      chunk: int = EVENT_CHUNK) -> Iterator[dict[str, Any]]:
    """The events of `iter_events` as raw arrays, one dict per chunk: `profile` (int32
    profile number, as in `make_ids`), `type` (int8 index into EVENT_TYPES), `ts`
    (datetime64[us]), `amount` (MaskedArray float64), `category` (int8 index into
    EVENT_CATEGORIES, -1 = null). Chunks are consecutive slices of time (up to late
    arrivals) of about `chunk` events each."""
    if n_profiles < 0 or events_per_profile < 0 or chunk < 1:
        raise ValueError("n_profiles and events_per_profile must be >= 0, chunk >= 1")
    if n_profiles == 0 or events_per_profile == 0:
        return
    act = _activity(n_profiles, events_per_profile, seed)
    slices = max(1, int(np.ceil(n_profiles * events_per_profile / chunk)))
    for k in range(slices):
        yield _event_slice(act, seed, k, slices)


def _event_dict(raw: dict[str, Any], n_profiles: int, ids: Any, dict_ids: bool = False) -> dict[str, Any]:
    """Raw arrays → the `generate_events` form (ids dictionary-encoded if `dict_ids`)."""
    numbers, codes = raw["profile"], None
    if dict_ids:
        numbers, codes = np.unique(raw["profile"], return_inverse=True)
    if ids is None:
        id_list = _format_ids(numbers, _id_width(n_profiles))
    else:
        id_list = ids[numbers].tolist()
    return {"ids": id_list if codes is None else Categorical(codes.astype(np.int32), id_list),
            "types": Categorical(raw["type"].astype(np.int32), EVENT_TYPES),
            "ts": raw["ts"],
            "properties": {"amount": raw["amount"],
                           "category": Categorical(raw["category"].astype(np.int32),
                                                   EVENT_CATEGORIES)}}


def _id_array(n_profiles: int, ids: Any) -> np.ndarray | None:
    if ids is None:
        return None
    arr = np.asarray(ids, dtype=object)
    if arr.shape != (n_profiles,):
        raise ValueError(f"ids must hold n_profiles ({n_profiles}) ids, got {len(arr)}")
    return arr


def iter_events(n_profiles: int, events_per_profile: float = 10, seed: int = 0,
                chunk: int = EVENT_CHUNK, ids: Any = None,
                dict_ids: bool = False) -> Iterator[dict[str, Any]]:
    """Synthetic events of profiles 0 .. n_profiles - 1, about `chunk` per dict yielded.

    Each dict is `{"ids", "types", "ts", "properties": {"amount", "category"}}`, the
    arguments of `Store.track_columns` (`store.track_columns(**ev)`). Event ids are the
    profiles' ids from `make_ids(n_profiles)`, or `ids[i]` for profile i when `ids` (a
    sequence of n_profiles ids) is given; with `dict_ids`, `ids` is a `Categorical` over
    the distinct ids of the dict (the dictionary-encoded form track_columns and the
    wire accept: each id hashed once). The data depend on (n_profiles,
    events_per_profile, seed, chunk); see the model notes above `EVENT_TYPES`.
    """
    id_arr = _id_array(n_profiles, ids)
    for raw in iter_event_arrays(n_profiles, events_per_profile, seed, chunk):
        yield _event_dict(raw, n_profiles, id_arr, dict_ids)


def _concat_raw(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if len(parts) == 1:
        return parts[0]
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("profile", "type", "ts", "category")}
    out["amount"] = np.ma.concatenate([p["amount"] for p in parts])
    return out


def _empty_raw() -> dict[str, Any]:
    return {"profile": np.zeros(0, np.int32), "type": np.zeros(0, np.int8),
            "ts": np.zeros(0, "datetime64[us]"), "category": np.zeros(0, np.int8),
            "amount": np.ma.MaskedArray(np.zeros(0), mask=np.zeros(0, bool))}


def generate_events(n_profiles: int, events_per_profile: float = 10, seed: int = 0,
                    ids: Any = None, dict_ids: bool = False) -> dict[str, Any]:
    """All the events of `iter_events(n_profiles, events_per_profile, seed)` in one dict
    (about n_profiles * events_per_profile events: for tens of millions, iterate)."""
    id_arr = _id_array(n_profiles, ids)
    parts = list(iter_event_arrays(n_profiles, events_per_profile, seed)) or [_empty_raw()]
    return _event_dict(_concat_raw(parts), n_profiles, id_arr, dict_ids)


def slice_events(ev: dict[str, Any], a: int, b: int) -> dict[str, Any]:
    """Events [a, b) of a `generate_events` / `iter_events` dict (same form)."""
    def cut(col: Any) -> Any:
        return Categorical(col.codes[a:b], col.categories) if isinstance(col, Categorical) else col[a:b]

    return {"ids": cut(ev["ids"]), "types": cut(ev["types"]), "ts": ev["ts"][a:b],
            "properties": {k: cut(v) for k, v in ev["properties"].items()}}


def event_batches(n_profiles: int, events_per_profile: float = 10, seed: int = 0,
                  batch_size: int = 1_000_000, ids: Any = None, chunk: int = EVENT_CHUNK,
                  dict_ids: bool = False) -> Iterator[dict[str, Any]]:
    """The events of `iter_events` in dicts of at most `batch_size` (for progress bars
    and for bounded `track_columns` calls); ids are formatted (or dictionary-encoded,
    with `dict_ids`: one dictionary per batch) batch by batch."""
    id_arr = _id_array(n_profiles, ids)
    for raw in iter_event_arrays(n_profiles, events_per_profile, seed, chunk):
        for lo in range(0, len(raw["profile"]), batch_size):
            part = {k: v[lo:lo + batch_size] for k, v in raw.items()}
            yield _event_dict(part, n_profiles, id_arr, dict_ids)
