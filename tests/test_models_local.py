"""Local backends: a tiny randomly initialised Llama (transformers, torch CPU; no download) and
llama.cpp through a stand-in ``Llama`` (keymaker-parity rows 28, 29)."""

from __future__ import annotations

import asyncio
import json
import math
import re

import pytest

from kmgrammar.constraints import CFGConstraint, JsonConstraint, OptionsConstraint, RegexConstraint
from kmgrammar.models import ConstraintViolation
from kmgrammar.prompt import Prompt

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (extra 'hf')")

CORPUS = ['The weather is sunny and warm today. 0123456789 {"name": "Alice", "age": 30} SELECT name FROM users; '
          "yes no maybe 日本 é"] * 4


@pytest.fixture(scope="module")
def tiny():
    """A byte-level BPE trained in memory and a 1-layer Llama with hidden size 16."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")
    cfg = transformers.LlamaConfig(
        vocab_size=len(hf_tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
        eos_token_id=hf_tok.eos_token_id, bos_token_id=hf_tok.eos_token_id)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).eval()
    from kmgrammar.models import Transformers

    return Transformers(model, hf_tok)


def complete(model, constraint, prompt="The weather is ", **kw):
    return asyncio.run(Prompt(prompt).complete(model=model, constraint=constraint, **kw)).completions[0]


def test_context_from_config(tiny):
    assert tiny.max_total_tokens == 256 and tiny.vocab.vocab_size == tiny.model.config.vocab_size


@pytest.mark.parametrize("pattern", [r"[0-9]{3}", r"(yes|no), [a-z]{2,4}\.", r"[é日本]{2,4}"])
def test_regex_ends_at_eos(tiny, pattern):
    c = complete(tiny, RegexConstraint(pattern), max_tokens=40)
    assert re.fullmatch(pattern, c.text)
    assert len(tiny.encode(c.text)) < 40  # ended by EOS, not by the budget
    assert c.score is not None and 0 < c.score <= 1


def test_options(tiny):
    for prompt in ["a", "The weather is ", "SELECT "]:
        assert complete(tiny, OptionsConstraint(["yes", "no", "maybe"]), prompt=prompt) in ("yes", "no", "maybe")


def test_json_schema(tiny):
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 99}},
              "required": ["name", "age"], "additionalProperties": False}
    c = complete(tiny, JsonConstraint(schema), max_tokens=60)
    jsonschema.validate(json.loads(c.text), schema)


def test_lark_grammar(tiny):
    lark = pytest.importorskip("lark")
    grammar = r"""
start: "SELECT " NAME " FROM " NAME ";"
NAME: /[a-z]{1,6}/
"""
    c = complete(tiny, CFGConstraint(grammar), max_tokens=60)
    lark.Lark(grammar, parser="earley", lexer="dynamic_complete").parse(c.text)


def test_kv_cache_reused_and_forced_text_batched(tiny, monkeypatch):
    sizes = []
    real = tiny._forward

    def spy(ids, cache):
        sizes.append((len(ids), cache is None))
        return real(ids, cache)

    monkeypatch.setattr(tiny, "_forward", spy)
    c = complete(tiny, RegexConstraint(r"The answer is [0-9]{2}\."), prompt="Q: ", max_tokens=30)
    assert re.fullmatch(r"The answer is [0-9]{2}\.", c.text)
    assert sizes[0][1] is True and all(not fresh for _, fresh in sizes[1:])
    # the forced "The answer is " went in with the prompt, in one forward pass
    assert sizes[0][0] == len(tiny.encode("Q: ")) + len(tiny.encode("The answer is "))
    assert all(n == 1 for n, _ in sizes[1:-1])


def test_unconstrained_and_sampling(tiny):
    from kmgrammar.models import Decoder

    from kmgrammar.models import TokenTracker

    tt = TokenTracker()
    complete(tiny, None, max_tokens=5, token_tracker=tt)  # random weights: any bytes, even invalid UTF-8
    assert tt.counts[0].completion_tokens <= 5 and tt.counts[0].prompt_tokens == len(tiny.encode("The weather is "))
    c2 = complete(tiny, RegexConstraint("[a-z]{4}"), decoder=Decoder(temperature=0.8, top_k=20, top_p=0.9,
                                                                      strategy="sample"),
                  gen_kwargs={"seed": 3})
    assert re.fullmatch("[a-z]{4}", c2.text)


def test_budget_too_small_raises(tiny):
    with pytest.raises(ConstraintViolation, match="max_tokens=2") as info:
        complete(tiny, RegexConstraint("[a-z]{8}"), max_tokens=2)
    assert re.fullmatch("[a-z]{1,7}", info.value.prefix)


def test_logits_processor_in_hf_generate(tiny):
    import kmgrammar
    from kmgrammar.models.transformers_model import KmgrammarLogitsProcessor

    ids = tiny.tokenizer("The weather is ", return_tensors="pt").input_ids
    proc = KmgrammarLogitsProcessor(kmgrammar.compile_regex("[0-9]{2,3}", tiny.vocab), prompt_length=ids.shape[1])
    out = tiny.model.generate(ids, max_new_tokens=10, do_sample=False,
                              logits_processor=transformers.LogitsProcessorList([proc]),
                              pad_token_id=tiny.tokenizer.eos_token_id)
    text = tiny.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert re.fullmatch("[0-9]{2,3}", text)


def test_no_global_patching():
    assert math.log(8, 2) == 3


def test_model_constraint_keeps_helper_top_k(tiny):
    from kmgrammar.constraints import ModelConstraint

    # The helper is the model itself: with top_k=1 every token must be the helper's argmax.
    c = ModelConstraint(tiny, top_k=1, constraint=RegexConstraint("[a-z]{3,6}"))
    text = complete(tiny, c, max_tokens=10).text
    assert re.fullmatch("[a-z]{3,6}", text)
    filt = c.step_filter(tiny)
    ids = tiny.encode("The weather is ")
    for t in tiny.encode(text)[:1]:
        keep = filt(ids)
        assert keep.sum() == 1
