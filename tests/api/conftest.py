# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the API tests: a real exo daemon on a free loopback port with the default model.

The daemon binary comes from EXO_BIN (ctest sets it), the model from EXO_MODEL (tests/api/run
sets it). Each daemon gets its own state directory and log file; a test that fails prints the
log's tail. Every wait is bounded.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import time

import pytest

START_TIMEOUT_S = 180  # a sanitizer build on a busy two-core machine loads slowly


def _binary():
    exe = os.environ.get("EXO_BIN")
    if exe and os.access(exe, os.X_OK):
        return exe
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in ("build/exo", "build/test/exo", "build/release/exo"):
        path = os.path.join(here, "..", "..", cand)
        if os.access(path, os.X_OK):
            return path
    pytest.skip("no exo binary (set EXO_BIN)")


def _model():
    model = os.environ.get("EXO_MODEL")
    if not model or not os.path.isfile(model):
        pytest.skip("no model (set EXO_MODEL, or run scripts/fetch-model)")
    return model


class Daemon:
    """One exo daemon process and how to reach it."""

    def __init__(self, tmp_path, *args, env=None):
        self.log_path = tmp_path / "exo.log"
        self.log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        # The daemon reads EXO_* variables; only what the test passes may apply.
        for k in list(full_env):
            if k.startswith("EXO_") and k not in ("EXO_MODEL_DIR",):
                del full_env[k]
        full_env.update(env or {})
        self.args = [_binary(), "--listen", "127.0.0.1", "--api-port", "0", "--gossip-port", "0",
                     "--state-dir", str(tmp_path / "state"), *args]
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=full_env)
        self.port = self._wait_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _wait_port(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            m = re.search(r"OpenAI-compatible API: http://[^:]+:(\d+)/v1", self.log_text())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError("exo exited at start:\n" + self.log_text())
            time.sleep(0.05)
        raise RuntimeError("exo did not start listening:\n" + self.log_text())

    def request(self, method, path, body=None, headers=None, timeout=120):
        """One request on a fresh connection: (status, headers dict, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def wait_ready(self, headers=None):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            status, _, body = self.request("GET", "/readyz", headers=headers)
            if status == 200:
                return json.loads(body)
            info = json.loads(body)
            assert info["status"] in ("waiting", "loading"), info
            time.sleep(0.1)
        raise RuntimeError("the model did not load:\n" + self.log_text())

    def metric(self, name, headers=None):
        _, _, body = self.request("GET", "/metrics", headers=headers)
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        raise KeyError(name)

    def stop(self, timeout=30):
        """SIGTERM; returns (exit status, seconds until the process was gone)."""
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc, time.monotonic() - t0


@pytest.fixture(scope="session")
def model():
    return _model()


def start_daemon(tmp_path, model, *args, env=None, headers=None):
    d = Daemon(tmp_path, "--model", model, *args, env=env)
    try:
        d.wait_ready(headers=headers)
    except Exception:
        d.stop()
        print(d.log_text()[-4000:])
        raise
    return d


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, model):
    """The shared daemon: a short queue (so 429 is reachable) and a 512-token context (so a
    prompt can overflow it cheaply)."""
    d = start_daemon(tmp_path_factory.mktemp("exo"), model, "--queue-depth", "2", "--ctx", "512")
    yield d
    rc, _ = d.stop()
    if rc != 0:
        print(d.log_text()[-4000:])
    assert rc == 0, f"exo exited with {rc}"
