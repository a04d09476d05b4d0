"""The seed usage page (shared/reference/seed-usage-doc.md) runs as written, with ``keymaker``
replaced by ``kmgrammar`` and the client's base URL pointed at the toy OpenAI server."""

from __future__ import annotations

import asyncio
import re
import textwrap

import pytest
from openai_server import OpenAIServer

import kmgrammar

# The two examples, verbatim from the page (top-level ``await`` as in a notebook).
ACCESSING = '''
from keymaker import Prompt
from keymaker.models import chatgpt
from keymaker.constraints import RegexConstraint

# Initialize the model
chat_model = chatgpt()

# Create a prompt
prompt = Prompt("The weather is ")

# Generate an unnamed completion
constraint1 = RegexConstraint(pattern=r"sunny|rainy|cloudy")
prompt = await prompt.complete(model=chat_model, constraint=constraint1)

# Generate a named completion
constraint2 = RegexConstraint(pattern=r" and (cold|warm|hot)")
prompt = await prompt.complete(
    model=chat_model, constraint=constraint2, name="temperature"
)

# Access the unnamed completion
unnamed_completion = prompt.completions[0]

# Access the named completion
named_completion = prompt.completions.temperature

print(prompt)
print(f"Unnamed completion: {unnamed_completion}")
print(f"Named completion: {named_completion}")
'''

CHAT = '''
from keymaker import Prompt
from keymaker.models import chatgpt

# Initialize the model
chat_model = chatgpt()

# Create a prompt with roles
prompt = Prompt("""
%system%You are a helpful assistant%/system%
%user%What is the capital of France?%/user%
%assistant%The capital of France is Paris.%/assistant%
""")

# Complete the prompt with the chat model
prompt = await prompt.complete(model=chat_model, name="next_response")

# Print the completed prompt
print(prompt)
'''


def run_example(code: str, *, prompt_module: str) -> dict:
    code = code.replace("from keymaker import Prompt", f"from {prompt_module} import Prompt")
    code = code.replace("keymaker", "kmgrammar")
    src = "async def __example():\n" + textwrap.indent(code, "    ") + "\n    return locals()\n"
    namespace: dict = {}
    exec(compile(src, "<seed-usage-doc>", "exec"), namespace)
    return asyncio.run(namespace["__example"]())


@pytest.fixture
def openai_env(monkeypatch):
    with OpenAIServer() as srv:
        # "the client's base URL": the official client's own environment defaults.
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        yield srv


PROMPT_MODULES = [
    pytest.param("kmgrammar.prompt", id="kmgrammar.prompt"),
    pytest.param("kmgrammar", id="kmgrammar", marks=pytest.mark.skipif(
        not hasattr(kmgrammar, "Prompt"), reason="kmgrammar/__init__.py does not export Prompt yet (lead)")),
]


@pytest.mark.parametrize("prompt_module", PROMPT_MODULES)
def test_accessing_completions(openai_env, capsys, prompt_module):
    ns = run_example(ACCESSING, prompt_module=prompt_module)
    unnamed, named = ns["unnamed_completion"], ns["named_completion"]
    assert re.fullmatch(r"sunny|rainy|cloudy", unnamed.text)
    assert len(named) == 1 and re.fullmatch(r" and (cold|warm|hot)", named[0].text)
    assert ns["prompt"] == "The weather is " + unnamed + named[0]
    out = capsys.readouterr().out
    assert out.startswith("The weather is sunny and warm\nUnnamed completion: sunny\n")


@pytest.mark.parametrize("prompt_module", PROMPT_MODULES)
def test_chat_roles(openai_env, capsys, prompt_module):
    ns = run_example(CHAT, prompt_module=prompt_module)
    reply = ns["prompt"].completions.next_response[0]
    assert reply.text.strip() == "Is there anything else I can help you with?"
    sent = openai_env.requests[0]["body"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant"]
    assert "Is there anything else" in capsys.readouterr().out
