"""The event loop is never blocked by mask work: a heartbeat task next to constrained completions.

A heartbeat coroutine wakes every 0.2 ms and records how late it is; meanwhile completions run
on the 100k-token cl100k vocabulary with regex and JSON Schema constraints, through the
sample-and-check engine (an in-process streaming model that awaits once per token, as a network
stream does) and through the toy OpenAI server over HTTP. Target (issue 5): no gap above 1 ms
attributable to a step. Compilation is warmed first and runs in a worker thread anyway.

    python bench/prompt_heartbeat.py
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kmgrammar  # noqa: E402
from kmgrammar.constraints import JsonConstraint, RegexConstraint  # noqa: E402
from kmgrammar.models import OpenAIChat  # noqa: E402
from kmgrammar.models.base import Model, Step  # noqa: E402
from kmgrammar.prompt import Prompt  # noqa: E402

VOCAB = kmgrammar.Vocabulary.from_tiktoken("cl100k_base")
REGEX = r"([a-z]+ ){150,200}[a-z]+\."
SCHEMA = {"type": "object", "properties": {
    "items": {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string", "maxLength": 12}},
        "required": ["id", "name"], "additionalProperties": False}, "maxItems": 40}},
    "required": ["items"], "additionalProperties": False}


class Streamer(Model):
    """Streams a fixed text token by token, yielding to the loop per token like a network stream."""

    model_name = "streamer"
    max_total_tokens = 8192

    def __init__(self, text: str) -> None:
        self.text = text

    @property
    def vocab(self):
        return VOCAB

    async def generate(self, text, max_tokens=1, selected_tokens=None, **kw):
        done = text[len("go: "):]
        rest = self.text[len(done):]
        ids = VOCAB.encode(rest)[:max_tokens]
        for t in ids:
            await asyncio.sleep(0)
            yield Step(VOCAB.decode([t]).decode("utf-8", "replace"), -0.01)
        if len(ids) < max_tokens:
            yield Step("", None, "stop")


async def heartbeat(stop: asyncio.Event, gaps: list[float], busy: list[float], period: float = 0.0002) -> None:
    """Wake every ``period``; record how late each wake-up is (wall clock) and how much CPU the
    loop thread spent between wake-ups (``thread_time``: the time the loop was busy running
    other callbacks, i.e. blocked, without the OS preemption a loaded 2-core machine adds)."""
    last, last_cpu = time.perf_counter(), time.thread_time()
    while not stop.is_set():
        await asyncio.sleep(period)
        now, cpu = time.perf_counter(), time.thread_time()
        gaps.append(now - last - period)
        busy.append(cpu - last_cpu)
        last, last_cpu = now, cpu


async def measure(name: str, job) -> None:
    gaps: list[float] = []
    busy: list[float] = []
    stop = asyncio.Event()
    hb = asyncio.create_task(heartbeat(stop, gaps, busy))
    t0 = time.perf_counter()
    steps = await job()
    dt = time.perf_counter() - t0
    stop.set()
    await hb
    gaps.sort()
    busy.sort()
    print(f"{name:36} steps={steps:4d} time={dt:6.3f}s beats={len(gaps):5d} "
          f"late p50={statistics.median(gaps) * 1e3:5.2f} max={gaps[-1] * 1e3:6.2f}ms | "
          f"loop busy between beats p50={statistics.median(busy) * 1e3:5.3f} "
          f"p99={busy[int(len(busy) * 0.99)] * 1e3:5.3f} max={busy[-1] * 1e3:6.3f}ms")


async def main() -> None:
    words = " ".join(["alpha", "beta", "gamma", "delta"] * 45) + " end."
    items = ", ".join(f'{{"id": {i}, "name": "item{i}"}}' for i in range(30))
    doc = f'{{"items": [{items}]}}'
    regex, js = RegexConstraint(REGEX), JsonConstraint(SCHEMA)
    await asyncio.to_thread(regex.compile, VOCAB)  # warm: compile time is not mask work
    await asyncio.to_thread(js.compile, VOCAB)

    async def run(constraint, text):
        p = await Prompt("go: ").complete(model=Streamer(text), constraint=constraint, max_tokens=600)
        return len(VOCAB.encode(p.completions[0].text))

    # Cold: the first completion on a fresh grammar also materialises its mask rows lazily.
    await measure("regex, cold first completion", lambda: run(regex, words))
    await measure("JSON schema, cold first completion", lambda: run(js, doc))
    # Warm, default GC: a full collection walks the grammars' row tables (lists of lists).
    await measure("regex, warm", lambda: run(regex, words))
    await measure("JSON schema, warm", lambda: run(js, doc))
    # Warm after gc.freeze() (what a server does once its grammars are loaded).
    import gc

    gc.collect()
    gc.freeze()
    for _ in range(3):
        await measure("regex, warm, gc.freeze()", lambda: run(regex, words))
        await measure("JSON schema, warm, gc.freeze()", lambda: run(js, doc))

    # The toy server runs in another process: in this one its pure-Python model would hold the
    # GIL and the heartbeat would measure the server, not the client.
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    base_url = parent.recv()
    try:
        model = OpenAIChat(base_url=base_url, api_key="bench")
        model.client  # build the client (imports, TLS setup) before measuring

        async def over_http():
            n = 0
            for prompt in ["Describe the user as JSON: ", "Output: "] * 5:
                p = await Prompt(prompt).complete(model=model, constraint=js, max_tokens=200)
                n += len(VOCAB.encode(p.completions[0].text))
            return n

        await measure("JSON schema over HTTP (10 calls)", over_http)
    finally:
        parent.send("stop")
        proc.join(5)


def _serve(conn) -> None:
    from openai_server import OpenAIServer

    with OpenAIServer() as srv:
        conn.send(srv.base_url)
        conn.recv()


if __name__ == "__main__":
    asyncio.run(main())
