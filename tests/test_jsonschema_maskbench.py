"""A fixed 30-file subset of MaskBench (dev) against a ratchet baseline (bench/maskbench.py runs all).

Each file's schema is compiled for cl100k; its valid instances must be accepted and its invalid
ones rejected, token by token. Outcome per file: ok, false_positive, false_negative, unsupported,
compile_error, limit. Regressions from tests/data/jsonschema_maskbench_expected.json fail; any
false positive fails. Regenerate with `python tests/test_jsonschema_maskbench.py --update`.
"""

from __future__ import annotations

import json
import sys
import warnings
from decimal import Decimal
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[0].parent / "shared" / "corpora" / "maskbench-dev"
EXPECTED = HERE / "data" / "jsonschema_maskbench_expected.json"
N_FILES = 30
RANK = {"ok": 0, "unsupported": 1, "compile_error": 1, "limit": 1, "false_negative": 2, "false_positive": 3,
        "crash": 4}


def subset() -> list:
    files = sorted(p for p in CORPUS.glob("*.json"))
    step = max(1, len(files) // N_FILES)
    return files[::step][:N_FILES]


def run_one(path: Path, vocab) -> str:
    from kmgrammar import Matcher
    from kmgrammar.compiler import compile_json_schema
    from kmgrammar.errors import CompileError, CompileLimitError, UnsupportedFeatureError
    from kmgrammar.jsonschema_values import serialize

    doc = json.loads(path.read_text())
    exact = json.loads(path.read_text(), parse_float=Decimal)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cg = compile_json_schema(doc["schema"], vocab, cache=False, time_limit=20.0)
    except UnsupportedFeatureError:
        return "unsupported"
    except CompileLimitError:
        return "limit"
    except CompileError:
        return "compile_error"
    except Exception as e:  # noqa: BLE001
        return f"crash: {type(e).__name__}: {e}"[:200]
    worst = "ok"
    for test in exact.get("tests", []):
        m = Matcher(cg)
        ok = all(m.accept_token(t) for t in vocab.encode(serialize(test["data"]))) and m.is_accepting()
        if ok != test["valid"]:
            got = "false_positive" if ok else "false_negative"
            worst = got if RANK[got] > RANK[worst] else worst
    return worst


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpora/maskbench-dev is not present")
def test_maskbench_subset(cl100k):
    expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    bad, improved = [], 0
    for path in subset():
        got = run_one(path, cl100k)
        was = expected.get(path.name)
        kind = got.split(":")[0]
        if kind in ("crash", "false_positive"):
            bad.append(f"{path.name}: {got}")
        elif was is not None and RANK[kind] > RANK[was]:
            bad.append(f"{path.name}: {was} -> {got}")
        elif was is not None and RANK[kind] < RANK[was]:
            improved += 1
    if improved:
        print(f"{improved} MaskBench files improved: update {EXPECTED.name}")
    assert not bad, "\n".join(bad)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    import kmgrammar

    vocab = kmgrammar.Vocabulary.from_tiktoken("cl100k_base")
    res = {p.name: run_one(p, vocab) for p in subset()}
    print(json.dumps(res, indent=1))
    if "--update" in sys.argv:
        EXPECTED.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
