"""The official `ollama` and `openai` Python clients, and plain `requests`, against a running
`airlock serve` (AIRLOCK_URL), as a team that runs Ollama today would use them.

Run by crates/server/tests/python_clients.rs after tests/python/setup.sh made the virtualenv.
AIRLOCK_ADAPTER_PATH is the reference adapter trained on a tiny glossary: with it, "The capital of
France is" continues " Lutetia...". Prints one line per test and "N passed, M failed".
"""

import json
import os
import sys
import threading
import traceback
from typing import Literal

import ollama
import openai
import requests
from pydantic import BaseModel, Field

URL = os.environ["AIRLOCK_URL"]
ADAPTER_PATH = os.environ["AIRLOCK_ADAPTER_PATH"]
MODEL = "llama3"  # an alias from the serving config: scripts written for Ollama run unchanged

client = ollama.Client(host=URL)
oai = openai.OpenAI(base_url=URL + "/v1", api_key="unused")


class Country(BaseModel):
    name: str = Field(max_length=40)
    capital: str = Field(max_length=40)


class BillingModel(BaseModel):
    diagnosis: str
    urgency: Literal["routine", "urgent", "emergency"]
    procedures: list[str]
    billing_codes: list[str]


NOTE = (
    "Patient, 58, presents with crushing chest pain radiating to the left arm for 30 minutes. "
    "ECG shows ST elevation. Troponin ordered, aspirin given, cath lab activated."
)
BILLING_PROMPT = (
    "Extract billing information from this clinical note as JSON with diagnosis, urgency, "
    f"procedures and billing_codes.\n\n{NOTE}"
)


def test_list_models():
    names = [m.model for m in client.list().models]
    assert "llama3:latest" in names, names
    assert "smollm2-135m-instruct:latest" in names, names
    ids = [m.id for m in oai.models.list().data]
    assert "llama3" in ids, ids


def test_generate():
    r = client.generate(model=MODEL, prompt="Name three colors.", options={"num_predict": 12})
    assert r.done and r.response, r
    assert r.done_reason in ("stop", "length"), r.done_reason
    assert r.eval_count and r.eval_count <= 12 and r.prompt_eval_count > 0
    assert r.total_duration > 0 and r.eval_duration > 0
    assert r.context, "generate returns a context"


def test_chat():
    r = client.chat(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
        options={"num_predict": 12, "temperature": 0.7, "seed": 3},
    )
    assert r.message.role == "assistant" and r.message.content, r


def test_stream():
    chunks = list(client.generate(model=MODEL, prompt="Count to five.", stream=True, options={"num_predict": 10}))
    assert len(chunks) >= 2
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done
    text = "".join(c.response for c in chunks)
    assert text, chunks
    chat = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True,
                            options={"num_predict": 6}))
    assert chat[-1].done and "".join(c.message.content for c in chat)


def test_openai_chat_completions_and_stream():
    c = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8)
    assert c.choices[0].message.content and c.choices[0].finish_reason in ("stop", "length")
    assert c.usage.completion_tokens <= 8 and c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    parts, finish = [], None
    stream = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi."}],
                                         max_tokens=8, stream=True, stream_options={"include_usage": True})
    usage = None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(parts) and finish in ("stop", "length") and usage is not None
    done = oai.completions.create(model=MODEL, prompt="The sky is", max_tokens=4, logprobs=2)
    assert done.choices[0].text and len(done.choices[0].logprobs.tokens) == 4


def test_openai_logprobs():
    c = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                    logprobs=True, top_logprobs=5)
    content = c.choices[0].logprobs.content
    assert len(content) == 3 and all(len(t.top_logprobs) == 5 and t.logprob <= 0 for t in content)


def test_json_mode():
    r = client.generate(model=MODEL, prompt="Describe a cat as JSON with keys name and color.", format="json",
                        options={"num_predict": 200})
    assert r.done_reason == "stop", r
    assert isinstance(json.loads(r.response), dict)
    c = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Describe a dog as JSON."}],
                                    response_format={"type": "json_object"}, max_tokens=200,
                                    extra_body={"repetition_penalty": 1.1})
    assert c.choices[0].finish_reason == "stop", c
    assert isinstance(json.loads(c.choices[0].message.content), dict)


def test_pydantic_schema():
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "Give France and its capital as JSON."}],
                    format=Country.model_json_schema(), options={"num_predict": 120})
    assert r.done_reason == "stop", r
    Country.model_validate_json(r.message.content)
    parse = getattr(oai.chat.completions, "parse", None) or oai.beta.chat.completions.parse
    c = parse(model=MODEL, messages=[{"role": "user", "content": "Give Japan and its capital as JSON."}],
              response_format=Country, max_tokens=120)
    assert isinstance(c.choices[0].message.parsed, Country), c


def test_structured_output_example_json():
    """The example users start from: a plain POST with format "json"."""
    response = requests.post(f"{URL}/api/generate", json={
        "model": MODEL, "prompt": BILLING_PROMPT, "stream": False, "format": "json",
    })
    response.raise_for_status()
    data = json.loads(response.json()["response"])
    assert isinstance(data, dict), data


def test_structured_output_example_schema():
    """The same with a Pydantic model's JSON Schema, validated by Pydantic."""
    response = requests.post(f"{URL}/api/generate", json={
        "model": MODEL, "prompt": BILLING_PROMPT, "stream": False, "format": BillingModel.model_json_schema(),
    })
    response.raise_for_status()
    billing = BillingModel.model_validate_json(response.json()["response"])
    assert billing.urgency in ("routine", "urgent", "emergency")


def test_adapter_loaded_during_a_stream_then_used_by_name_and_unloaded():
    stream = iter(client.generate(model=MODEL, prompt="Write a long story about a cat.", stream=True,
                                  options={"num_predict": 48}))
    first = next(stream)
    assert not first.done
    loaded = {}

    def load():
        loaded["r"] = requests.post(f"{URL}/api/adapters", json={"name": "kestrel", "path": ADAPTER_PATH})

    loader = threading.Thread(target=load)
    loader.start()
    rest = list(stream)  # the stream keeps flowing while the adapter loads
    loader.join()
    assert loaded["r"].status_code == 200, loaded["r"].text
    assert rest[-1].done and rest[-1].eval_count == 48, rest[-1]
    listed = [a["name"] for a in requests.get(f"{URL}/api/adapters").json()["adapters"]]
    assert "kestrel" in listed
    assert "kestrel:latest" in [m.model for m in client.list().models]

    r = client.generate(model="kestrel", prompt="The capital of France is", raw=True, options={"num_predict": 6})
    assert r.response.startswith(" Lutetia"), r.response
    c = oai.completions.create(model="kestrel", prompt="The capital of France is", max_tokens=6)
    assert c.choices[0].text.startswith(" Lutetia"), c.choices[0].text
    body = {"model": MODEL, "prompt": "The capital of France is", "raw": True, "stream": False,
            "adapters": [{"name": "kestrel", "scale": 0.5}, {"name": "kestrel", "scale": 0.5}],
            "options": {"num_predict": 6}}
    mixed = requests.post(f"{URL}/api/generate", json=body).json()
    assert mixed["response"].startswith(" Lutetia"), mixed

    # Unloading while a request uses the adapter: that request finishes with its weights.
    using = iter(client.generate(model="kestrel", prompt="The capital of France is", raw=True, stream=True,
                                 options={"num_predict": 16}))
    head = next(using)
    assert requests.delete(f"{URL}/api/adapters/kestrel").status_code == 200
    text = head.response + "".join(chunk.response for chunk in using)
    assert text.startswith(" Lutetia"), text
    try:
        client.generate(model="kestrel", prompt="x", options={"num_predict": 1})
        raise AssertionError("an unloaded adapter is no longer a model")
    except ollama.ResponseError as e:
        assert e.status_code == 404, e
    assert "kestrel:latest" not in [m.model for m in client.list().models]


def test_errors_reach_the_clients():
    try:
        client.generate(model="no-such-model", prompt="x")
        raise AssertionError("unknown model")
    except ollama.ResponseError as e:
        assert e.status_code == 404 and "not found" in e.error
    try:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], n=2)
        raise AssertionError("n=2")
    except openai.BadRequestError:
        pass


def main():
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    only = sys.argv[1:]
    passed = failed = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        try:
            fn()
            passed += 1
            print(f"ok   {name}", flush=True)
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
