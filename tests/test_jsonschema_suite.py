"""The official JSON-Schema-Test-Suite (drafts 2020-12 and 7) against a ratchet baseline.

Every test is compiled (cl100k vocabulary, one compilation per schema), its instance serialized in
the supported form (`jsonschema_values.serialize`, keys in order of first appearance in the
schema) and walked token by token through a `Matcher`. Outcomes: pass, false_positive,
false_negative, compile_error, unsupported. Each test is also run *projected* on its instance's
type (the schema plus `allOf: [{"type": T}]`, which has the same answer for that instance) when the
whole schema does not compile, which exercises the keywords the unsupported parts surround.

The committed baseline is tests/data/jsonschema_suite_expected.json. Any regression fails; an
improvement prints a note. Regenerate with `python tests/test_jsonschema_suite.py --update`.
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[0].parent / "shared"
SUITE = SHARED / "corpora" / "JSON-Schema-Test-Suite" / "tests"
EXPECTED = HERE / "data" / "jsonschema_suite_expected.json"
DRAFTS = ("draft2020-12", "draft7")
# Files whose schemas need what no engine here offers (remote refs, meta-schemas, vocabularies);
# they are still run, listed here only for the record.
RANK = {"pass": 0, "departure": 1, "unsupported": 1, "compile_error": 1, "false_negative": 2, "false_positive": 3, "crash": 4}
TIME_LIMIT = 10.0


def _files():
    for draft in DRAFTS:
        for path in sorted((SUITE / draft).rglob("*.json")):
            yield draft, path


def _type_name(v) -> str:
    from kmgrammar.jsonschema import _type_of

    return _type_of(v)


def _rank_keys(schema) -> dict:
    """The key order the compiled schema expects: `properties` names, then `required` names, then
    `dependentRequired` ones (dependencies before the key), by first appearance."""
    names: dict = {}
    stack = [schema]
    seen = set()
    while stack:
        s = stack.pop(0)
        if isinstance(s, list):
            stack[0:0] = s
        elif isinstance(s, dict) and id(s) not in seen:
            seen.add(id(s))
            ref = s.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/") and isinstance(schema, dict):
                target = schema
                for part in ref[2:].split("/"):
                    part = part.replace("~1", "/").replace("~0", "~")
                    target = target.get(part) if isinstance(target, dict) else None
                if isinstance(target, dict):
                    stack.insert(0, target)
            props = s.get("properties")
            if isinstance(props, dict):
                for k in props:
                    names.setdefault(k, len(names))
            late = list(s.get("required", [])) if isinstance(s.get("required"), list) else []
            for k in ("dependentRequired", "dependencies"):
                if isinstance(s.get(k), dict):
                    for name, dep in s[k].items():
                        late += (list(dep) if isinstance(dep, list) else []) + [name]
            for k in late:
                if isinstance(k, str):
                    names.setdefault(k, len(names) + 10**6)
            for k, v in s.items():
                if k in ("enum", "const"):  # object constants are written in their own key order
                    for c in (v if k == "enum" and isinstance(v, list) else [v]):
                        if isinstance(c, dict):
                            for n in c:
                                names.setdefault(n, len(names))
                    continue
                if k in ("$defs", "definitions"):
                    continue  # reached through $ref, in the order the compiler meets them
                if k not in ("default", "examples") and isinstance(v, (dict, list)):
                    if k in ("properties", "patternProperties", "dependentSchemas"):
                        stack.extend(v.values() if isinstance(v, dict) else v)
                    else:
                        stack.append(v)
    return names


def _ordered(v, rank):
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: (rank.get(k, 10**9), list(v).index(k)))
        return {k: _ordered(v[k], rank) for k in keys}
    if isinstance(v, list):
        return [_ordered(x, rank) for x in v]
    return v


def _refers_to_root(schema) -> bool:
    text = json.dumps(schema)
    root_id = schema.get("$id") if isinstance(schema, dict) else None
    return '"$ref": "#"' in text or (isinstance(root_id, str) and f'"$ref": "{root_id}"' in text)


def _project(schema, t: str):
    if _refers_to_root(schema):
        return schema  # adding a conjunct at the root would change what "#" means
    if schema is True:
        return {"type": t}
    if schema is False:
        return False
    out = dict(schema)
    out["allOf"] = list(schema.get("allOf", [])) + [{"type": t}]
    return out


def _compile(schema, vocab):
    from kmgrammar.compiler import compile_json_schema
    from kmgrammar.errors import CompileError, UnsupportedFeatureError

    try:
        return compile_json_schema(schema, vocab, cache=False, time_limit=TIME_LIMIT), None
    except UnsupportedFeatureError:
        return None, "unsupported"
    except CompileError as e:
        if "empty language" in str(e):
            return None, "empty"  # a schema nothing satisfies: every instance is rejected
        return None, "compile_error:" + str(e)[:120]
    except Exception as e:  # noqa: BLE001 - a crash is an outcome to record, never a pass
        return None, f"crash:{type(e).__name__}: {e}"[:200]


def _accepts(compiled, text: str, vocab) -> bool:
    from kmgrammar import Matcher

    m = Matcher(compiled)
    for tok in vocab.encode(text):
        if not m.accept_token(tok):
            return False
    return m.is_accepting()


def run_suite(vocab) -> dict:
    """{test id: outcome} for the full and the projected runs."""
    from kmgrammar.jsonschema_values import serialize

    out: dict = {}
    for draft, path in _files():
        raw = json.loads(path.read_text())
        exact = json.loads(path.read_text(), parse_float=Decimal)
        rel = path.relative_to(SUITE).as_posix()
        for ci, (case, case_x) in enumerate(zip(raw, exact)):
            schema = case["schema"]
            if draft == "draft7" and isinstance(schema, dict) and "$schema" not in schema:
                schema = dict(schema, **{"$schema": "http://json-schema.org/draft-07/schema#"})
            rank = _rank_keys(schema)
            compiled = {}
            for ti, (test, test_x) in enumerate(zip(case["tests"], case_x["tests"])):
                data = test_x["data"]
                text = serialize(_ordered(data, rank))
                for mode in ("full", "typed"):
                    key = "full" if mode == "full" else _type_name(data)
                    if mode == "typed" and compiled["full"][1] is None:
                        key = "full"  # the whole schema compiled: the projection adds nothing
                    if key not in compiled:
                        compiled[key] = _compile(schema if mode == "full" else _project(schema, key), vocab)
                    cg, err = compiled[key]
                    if err == "empty":
                        outcome = "false_negative" if test["valid"] else "pass"
                    elif err is not None:
                        outcome = err.split(":")[0]
                    else:
                        ok = _accepts(cg, text, vocab)
                        outcome = "pass" if ok == test["valid"] else "false_positive" if ok else "false_negative"
                    if outcome == "false_negative" and "only an annotation" in test["description"]:
                        outcome = "departure"  # format is asserted (documented departure)
                    out[f"{rel}#{ci}/{ti}|{mode}"] = outcome
    return out


def tally(results: dict) -> dict:
    t: dict = {}
    for k, v in results.items():
        mode = k.rsplit("|", 1)[1]
        draft = k.split("/", 1)[0]
        t.setdefault(f"{draft}|{mode}", {}).setdefault(v, 0)
        t[f"{draft}|{mode}"][v] += 1
    return t


@pytest.mark.skipif(not SUITE.is_dir(), reason="../shared/corpora/JSON-Schema-Test-Suite is not present")
def test_json_schema_test_suite(cl100k):
    results = run_suite(cl100k)
    expected = json.loads(EXPECTED.read_text())["results"] if EXPECTED.exists() else {}
    regressions, improved = [], 0
    for k, v in results.items():
        was = expected.get(k)
        if v == "crash" or v == "false_positive":
            regressions.append(f"{k}: {v}")
        elif was is not None and RANK[v] > RANK[was]:
            regressions.append(f"{k}: {was} -> {v}")
        elif was is not None and RANK[v] < RANK[was]:
            improved += 1
    if improved:
        print(f"{improved} suite tests improved: update {EXPECTED.name} (python {Path(__file__).name} --update)")
    assert not regressions, "regressions:\n" + "\n".join(regressions[:50])


if __name__ == "__main__":  # regenerate the baseline
    sys.path.insert(0, str(HERE.parent))
    import kmgrammar

    t0 = time.time()
    res = run_suite(kmgrammar.Vocabulary.from_tiktoken("cl100k_base"))
    summary = tally(res)
    print(json.dumps(summary, indent=1), f"{time.time() - t0:.1f}s")
    if "--update" in sys.argv:
        EXPECTED.parent.mkdir(exist_ok=True)
        EXPECTED.write_text(json.dumps({"summary": summary, "results": res}, indent=0, sort_keys=True) + "\n")
    if "-v" in sys.argv:
        for k, v in sorted(res.items()):
            if v in ("false_positive", "false_negative", "crash"):
                print(k, v)
