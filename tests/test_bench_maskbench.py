"""bench/maskbench.py's key-order search: it labels MaskBench false negatives "key order only",
so a search that finds an order where there is none would hide a real false negative."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from kmgrammar import compile_json_schema
from kmgrammar.jsonschema_values import serialize

BENCH = Path(__file__).resolve().parents[1] / "bench" / "maskbench.py"


@pytest.fixture(scope="module")
def maskbench():
    spec = importlib.util.spec_from_file_location("maskbench_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def compiled(cl100k):
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "boolean"}},
                  "required": ["x", "y"], "additionalProperties": False},
            "c": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    return compile_json_schema(schema, cl100k, cache=False)


@pytest.mark.parametrize("data", [
    {"a": 1, "b": {"x": "s", "y": True}},            # schema order
    {"b": {"y": False, "x": ""}, "a": 2},            # both levels reordered
    {"c": [1, 2], "b": {"x": "s", "y": True}, "a": 3},
])
def test_finds_an_accepted_order(maskbench, compiled, data):
    assert maskbench._accepted_in_some_key_order(compiled, data, serialize) is True


@pytest.mark.parametrize("data", [
    {"b": {"y": True, "x": "s"}, "a": "1"},          # wrong type whatever the order
    {"b": {"x": "s", "y": True}},                    # "a" missing
    {"a": 1, "b": {"x": "s", "y": True}, "d": 0},    # undeclared key
    {"c": [1, "2"], "a": 1, "b": {"x": "s", "y": True}},
])
def test_no_order_for_an_invalid_value(maskbench, compiled, data):
    assert maskbench._accepted_in_some_key_order(compiled, data, serialize) is False


def test_gives_up_past_its_budget(maskbench, compiled):
    data = {"c": [1, 2], "b": {"y": True, "x": "s"}, "a": 3}
    assert maskbench._accepted_in_some_key_order(compiled, data, serialize, budget=3) is None


def test_any_order_alone_counts_fallbacks_as_limits(maskbench):
    """A file compiled in schema order after property_order="any"'s limit error counts as that
    error: not compiled, its instances not counted."""
    done = {"file": "a.json", "status": "ok", "compile_s": 0.01, "states": 5, "valid": 2, "valid_accepted": 2,
            "invalid": 1, "invalid_rejected": 1, "mask_ns": [1000, 3000]}
    fallback = dict(done, file="b.json", status="false_negative", valid_accepted=1, order="schema", compile_s=0.5)
    got = maskbench.any_order_alone([done, fallback])
    assert got["status"] == {"ok": 1, "limit": 1}
    assert got["compiled_pct"] == 50.0 and got["valid_accepted"] == "2/2" and got["invalid_rejected"] == "1/1"
    assert got["compile_ms"]["max"] == 10.0 and got["mask_us"]["n"] == 2


@pytest.mark.parametrize("schema", [{"type": "object", "properties": {"a": {"type": "integer"}}},  # grammar
                                    {"type": "array", "items": {"type": "integer"}}])  # regular
def test_run_file_walks_instances(maskbench, schema, tmp_path, monkeypatch):
    monkeypatch.setenv("KMGRAMMAR_CACHE_DIR", str(tmp_path / "cache"))
    doc = {"schema": schema, "tests": [{"data": {"a": 1} if "properties" in schema else [1, 2], "valid": True},
                                       {"data": {"a": "x"} if "properties" in schema else ["x"], "valid": False}]}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(doc))
    got = maskbench.run_file(path)
    assert got["status"] == "ok", got
    assert (got["valid_accepted"], got["invalid_rejected"]) == (1, 1) and len(got["mask_ns"]) >= 3


@pytest.mark.parametrize("engine", ["llguidance", "xgrammar"])
def test_peer_file_walks_and_times_masks(maskbench, engine, tmp_path):
    """The peers' instances go through the same walk as kmgrammar's, their masks timed."""
    pytest.importorskip(engine)
    doc = {"schema": {"type": "array", "items": {"type": "integer"}},
           "tests": [{"data": [1, 2], "valid": True}, {"data": ["x"], "valid": False}]}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(doc))
    got = maskbench.peer_file(path, engine, 30.0)
    assert got["status"] == "ok", got
    assert len(got["mask_ns"]) >= 3
