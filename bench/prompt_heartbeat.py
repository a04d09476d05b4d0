"""The event loop is never blocked by mask work: a heartbeat task next to constrained completions.

A heartbeat coroutine wakes every 0.2 ms and records how late it is; meanwhile completions run
on the 100k-token cl100k vocabulary with regex and JSON Schema constraints, through the
sample-and-check engine (an in-process streaming model that awaits once per token, as a network
stream does) and through the toy OpenAI server over HTTP. Target (issue 5): the loop is never
blocked by mask work longer than 1 ms per step. Compilation is warmed first (it runs in a worker
thread anyway).

Two figures per run. "mask work" is measured directly: every matcher call is timed (the bench
hands the engine timing proxies; thread CPU time) and summed between consecutive points where the loop is free to
run other tasks (each item the model streams, each heartbeat wake-up); its maximum is the longest
stretch the loop spent in mask work. "loop busy" is the heartbeat's view of everything the loop
did between wake-ups (mask work plus the toy model's own tokenizer calls, the HTTP client, ...).

    python bench/prompt_heartbeat.py
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kmgrammar  # noqa: E402
from kmgrammar.constraints import CFGConstraint, JsonConstraint, RegexConstraint  # noqa: E402
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


class Stretches:
    """Mask work summed between points where the event loop is free (see module doc)."""

    def __init__(self) -> None:
        self.acc = 0.0
        self.done: list[float] = []
        self.gc_pauses: list[float] = []  # collections that ran inside a matcher call

    def cut(self) -> None:
        if self.acc:
            self.done.append(self.acc)
        self.acc = 0.0


class GcClock:
    """CPU time spent in the cyclic garbage collector. A full collection walks every object of
    the process (45–60 ms here with numba, lark and openai imported, whatever kmgrammar holds); it
    can start inside any allocation, so it is reported apart from mask work."""

    def __init__(self) -> None:
        self.total = 0.0
        self._t = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase, info) -> None:
        if phase == "start":
            self._t = time.thread_time()
        else:
            self.total += time.thread_time() - self._t


WORK = Stretches()
GC = GcClock()
_TIMED = ("accept_token", "accept_string", "fill_next_token_bitmask", "allowed_token_ids",
          "forced_bytes", "is_accepting", "is_terminated", "rollback")


class TimedMatcher:
    """Forwards to a real Matcher, adding the time of every call to WORK."""

    def __init__(self, m) -> None:
        self._m = m

    def __getattr__(self, name):
        fn = getattr(self._m, name)
        if name not in _TIMED:
            return fn

        def timed(*args, **kwargs):
            # CPU time of this thread: on a loaded machine wall time would also count the
            # moments the OS ran other processes, which block nothing in this loop.
            t, g = time.thread_time(), GC.total
            try:
                return fn(*args, **kwargs)
            finally:
                in_gc = GC.total - g
                WORK.acc += time.thread_time() - t - in_gc
                if in_gc:
                    WORK.gc_pauses.append(in_gc)

        return timed


def timed_generate(model) -> None:
    """Cut the mask-work stretch at every item the model streams (the loop may run others there)."""
    inner = model.generate

    async def generate(*args, **kwargs):
        async for item in inner(*args, **kwargs):
            WORK.cut()
            yield item

    generate.__signature__ = __import__("inspect").signature(inner)
    model.generate = generate


def install_timing() -> None:
    from kmgrammar.constraints.base import Constraint

    real = Constraint.matcher_for
    Constraint.matcher_for = lambda self, model: TimedMatcher(real(self, model))


async def heartbeat(stop: asyncio.Event, gaps: list[float], busy: list[float], period: float = 0.0002) -> None:
    """Wake every ``period``; record how late each wake-up is (wall clock) and how much CPU the
    loop thread spent between wake-ups (``thread_time``: the time the loop was busy running
    other callbacks, i.e. blocked, without the OS preemption a loaded 2-core machine adds)."""
    last, last_cpu = time.perf_counter(), time.thread_time()
    while not stop.is_set():
        await asyncio.sleep(period)
        now, cpu = time.perf_counter(), time.thread_time()
        WORK.cut()
        gaps.append(now - last - period)
        busy.append(cpu - last_cpu)
        last, last_cpu = now, cpu


async def measure(name: str, job) -> None:
    gaps: list[float] = []
    busy: list[float] = []
    stop = asyncio.Event()
    WORK.cut()
    WORK.done.clear()
    WORK.gc_pauses.clear()
    hb = asyncio.create_task(heartbeat(stop, gaps, busy))
    t0 = time.perf_counter()
    steps = await job()
    dt = time.perf_counter() - t0
    stop.set()
    await hb
    WORK.cut()
    gaps.sort()
    busy.sort()
    work = sorted(WORK.done)
    RESULTS.append((name, work[-1]))
    print(f"{name:34} steps={steps:4d} time={dt:6.3f}s | mask work per stretch "
          f"p50={statistics.median(work) * 1e3:5.3f} p99={work[int(len(work) * 0.99)] * 1e3:5.3f} "
          f"max={work[-1] * 1e3:5.3f}ms | loop busy between beats p50={statistics.median(busy) * 1e3:5.3f} "
          f"max={busy[-1] * 1e3:6.3f}ms, late max={gaps[-1] * 1e3:6.2f}ms"
          + (f" | GC inside matcher calls: {len(WORK.gc_pauses)}, max {max(WORK.gc_pauses) * 1e3:.1f}ms"
             if WORK.gc_pauses else ""))


RESULTS: list[tuple[str, float]] = []


async def main() -> None:
    words = " ".join(["alpha", "beta", "gamma", "delta"] * 45) + " end."
    items = ", ".join(f'{{"id": {i}, "name": "item{i}"}}' for i in range(30))
    doc = f'{{"items": [{items}]}}'
    install_timing()
    regex, js = RegexConstraint(REGEX), JsonConstraint(SCHEMA)
    await asyncio.to_thread(regex.compile, VOCAB)  # warm: compile time is not mask work
    await asyncio.to_thread(js.compile, VOCAB)
    # A context-free grammar: masks on stack shapes not seen before walk the Earley charts.
    cfg = CFGConstraint("json")
    await asyncio.to_thread(cfg.compile, VOCAB)
    nested = json.dumps({"a": [1, {"b": [2, {"c": [3, {"d": [4, {"e": [5, {"f": "x"}]}]}]}]}],
                         "g": [[[[[["deep"]]]]]], "h": {"i": -1.5e3, "j": [True, False, None]}})

    async def run(constraint, text):
        model = Streamer(text)
        timed_generate(model)
        p = await Prompt("go: ").complete(model=model, constraint=constraint, max_tokens=600)
        return len(VOCAB.encode(p.completions[0].text))

    # Cold: the first completion on a fresh grammar also materialises its mask rows lazily.
    await measure("regex, cold first completion", lambda: run(regex, words))
    await measure("JSON schema, cold first completion", lambda: run(js, doc))
    await measure("grammar (json.lark), cold first", lambda: run(cfg, nested))
    # Warm, default GC: a full collection walks the grammars' row tables (lists of lists).
    await measure("regex, warm", lambda: run(regex, words))
    await measure("JSON schema, warm", lambda: run(js, doc))
    await measure("grammar (json.lark), warm", lambda: run(cfg, nested))
    # Warm after gc.freeze() (what a server does once its grammars are loaded).
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
        timed_generate(model)

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
    worst = max(RESULTS, key=lambda r: r[1])
    print(f"longest stretch of mask work: {worst[1] * 1e3:.3f} ms ({worst[0]}); target <= 1 ms: "
          f"{'met' if worst[1] <= 1e-3 else 'MISSED'}")


def _serve(conn) -> None:
    from openai_server import OpenAIServer

    with OpenAIServer() as srv:
        conn.send(srv.base_url)
        conn.recv()


if __name__ == "__main__":
    asyncio.run(main())
