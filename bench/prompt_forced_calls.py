"""Forced text saves model calls: API requests per completion on a JSON schema with fixed keys.

Runs the Prompt layer against the toy OpenAI-compatible server (tests/openai_server.py) over
HTTP and counts requests. Target (issue 5): requests <= free-choice spans (here 3: the values
of name, age, city), not one per token.

    python bench/prompt_forced_calls.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openai_server import OpenAIServer  # noqa: E402

from kmgrammar.constraints import JsonConstraint  # noqa: E402
from kmgrammar.models import OpenAIChat, OpenAICompletion  # noqa: E402
from kmgrammar.prompt import Prompt  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"},
                   "city": {"type": "string", "maxLength": 20}},
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
FREE_SPANS = 3
PROMPTS = ["Describe the user as JSON: ", "Output: ", "My name is Alice and I am 30 years old. JSON: "]


async def main() -> None:
    constraint = JsonConstraint(SCHEMA)
    rows = []
    with OpenAIServer() as srv:
        for cls in (OpenAIChat, OpenAICompletion):
            model = cls(base_url=srv.base_url, api_key="bench")
            for prompt in PROMPTS:
                srv.reset()
                t0 = time.perf_counter()
                out = await Prompt(prompt).complete(model=model, constraint=constraint, max_tokens=60)
                dt = time.perf_counter() - t0
                text = out.completions[0].text
                json.loads(text)
                n_tokens = len(model.encode(text))
                rows.append((cls.__name__, prompt, len(srv.requests), n_tokens, dt, text))
    print(f"{'backend':17} {'prompt':48} {'requests':>8} {'tokens':>6} {'seconds':>7}  output")
    for name, prompt, req, ntok, dt, text in rows:
        print(f"{name:17} {prompt!r:48} {req:8d} {ntok:6d} {dt:7.3f}  {text}")
    worst = max(r[2] for r in rows)
    print(f"\nfree-choice spans: {FREE_SPANS}; worst requests: {worst}; "
          f"target requests <= spans: {'met' if worst <= FREE_SPANS else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
