# SPDX-License-Identifier: Apache-2.0
"""The dashboard in headless Chromium, driven by Selenium (run by tests/browser/run, inside
node 1's network namespace).

Two daemons (EXO_BROWSER_NODES more): node 1 serves the default model, the others only take part
in the cluster. The page, loaded from node 1, must show every node, keep its charts moving when the daemon reports
telemetry, stream a chat answer with its time to first token and tokens/s, say plainly when node 1
goes away and recover when it comes back, and log no console errors on the way. The only
network errors allowed are the 404s and 503s of the routes that may be missing or not ready
(devices, telemetry), /readyz's 503 while a model loads and, while node 1 is down, failed
connections. Every wait is bounded; screenshots go to $EXO_BROWSER_OUT.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

EXO = os.environ["EXO_BIN"]
MODEL = os.environ["EXO_MODEL"]
OUT = os.environ["EXO_BROWSER_OUT"]
WORK = os.environ["EXO_BROWSER_WORK"]
NODES = [tuple(n.split(":")) for n in os.environ["EXO_BROWSER_CLUSTER"].split()]
URL = f"http://{NODES[0][1]}:52415/"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,1300"]
OPTIONAL_ROUTES = ("/api/v1/devices", "/api/v1/telemetry")

procs = {}


def log(msg):
    print(f"tests/browser: {msg}", flush=True)


def start_daemon(i):
    ns, ip = NODES[i]
    args = ["ip", "netns", "exec", ns, EXO, "--listen", ip, "--api-port", "52415",
            "--gossip-port", "52416", "--state-dir", f"{WORK}/state-n{i + 1}", "--name", f"n{i + 1}",
            "--join", f"{NODES[0][1]}:52416", "--threads", "1",
            "--model", MODEL if i == 0 else "none"]
    logf = open(f"{OUT}/daemon-n{i + 1}.log", "a")
    procs[i] = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
    with open(f"{WORK}/pids", "a") as f:  # the runner kills these if this script dies
        f.write(f"{procs[i].pid}\n")


def stop_daemon(i):
    p = procs.pop(i)
    p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def get(path, ip=NODES[0][1]):
    try:
        with urllib.request.urlopen(f"http://{ip}:52415{path}", timeout=2) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


def wait(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def cluster_ready():
    if get("/readyz")[0] != 200:
        return False
    status, nodes = get("/api/v1/nodes")
    return status == 200 and sum(n["state"] == "alive" for n in nodes["nodes"]) == len(NODES)


def check_console(driver, allow_unreachable=False):
    bad = []
    for e in driver.get_log("browser"):
        if e["level"] != "SEVERE":
            continue
        msg = e["message"]
        if e["source"] == "network":
            if re.search(r"status of (404|503)", msg) and any(r in msg for r in OPTIONAL_ROUTES):
                continue  # not served by this daemon, or not measured yet
            if "status of 503" in msg and "/readyz" in msg:
                continue  # a model still loading: the page shows its progress
            if allow_unreachable and "net::ERR_" in msg:
                continue
        bad.append(f"{e['source']}: {msg}")
    assert not bad, "console errors:\n  " + "\n  ".join(bad)


def shot(driver, name):
    path = f"{OUT}/{name}.png"
    driver.save_screenshot(path)
    log(f"screenshot {path}")


def text(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def attr(driver, css, name):
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return els[0].get_attribute(name) if els else None


def check_nodes(driver):
    n = len(NODES)
    wait("every node in the graph and the table", lambda: attr(driver, "#graph", "data-nodes") == str(n)
         and len(driver.find_elements(By.CSS_SELECTOR, "#nodes tbody tr[data-state=alive]")) == n, 20)
    wait("a measured round-trip time", lambda: re.search(r"\d+(\.\d+)? ms", text(driver, "#nodes tbody")), 15)
    rows = text(driver, "#nodes tbody")
    assert all(f"n{i + 1}" in rows for i in range(n)) and "leader" in rows, rows
    assert f"{n}/{n} nodes alive" in text(driver, "#summary"), text(driver, "#summary")
    wait("the model panel", lambda: "ready" in text(driver, "#model"), 10)
    log(f"nodes: {rows!r}")


def check_charts(driver):
    if get("/api/v1/telemetry")[0] == 404:
        log("charts: not checked: this daemon serves no telemetry yet (/api/v1/telemetry is 404)")
        wait("the charts panel to say so", lambda: "does not report telemetry" in text(driver, "#charts"), 5)
        return
    wait("a chart per node", lambda: len(driver.find_elements(By.CSS_SELECTOR, ".chart")) == len(NODES), 15)
    before = {c.get_attribute("data-id"): int(c.get_attribute("data-last"))
              for c in driver.find_elements(By.CSS_SELECTOR, ".chart")}
    def moved():
        now = {c.get_attribute("data-id"): int(c.get_attribute("data-last"))
               for c in driver.find_elements(By.CSS_SELECTOR, ".chart")}
        return all(now.get(k, 0) > v for k, v in before.items())
    wait("every chart to get a newer sample", moved, 10)
    log(f"charts: all {len(NODES)} nodes' charts moved")


def check_chat(driver):
    driver.find_element(By.ID, "max-tokens").clear()
    driver.find_element(By.ID, "max-tokens").send_keys("48")
    driver.find_element(By.ID, "prompt").send_keys("What is the capital of France?")
    wait("the send button", lambda: driver.find_element(By.ID, "send").is_enabled(), 10)
    driver.find_element(By.ID, "send").click()
    css = ".msg.assistant"
    wait("the answer to stream", lambda: attr(driver, css, "data-state") == "streaming", 30)
    wait("the answer to end", lambda: attr(driver, css, "data-state") in ("done", "error"), 60)
    answer = text(driver, f"{css} .text")
    stats = text(driver, f"{css} .stats")
    assert attr(driver, css, "data-state") == "done", text(driver, css)
    assert answer.strip(), "empty answer"
    assert int(attr(driver, css, "data-chunks")) > 1, "the answer came in one piece, not streamed"
    assert "TTFT" in stats and "tok/s" in stats, stats
    log(f"chat: {answer!r} [{stats}]")


def check_unreachable(driver):
    check_console(driver)  # everything up to here must be clean
    stop_daemon(0)
    wait("the unreachable banner", lambda: driver.find_element(By.ID, "banner").is_displayed(), 15)
    assert "unreachable" in text(driver, "#banner")
    assert text(driver, "#conn") == "offline"
    shot(driver, "3-unreachable")
    start_daemon(0)
    wait("node 1 to come back", cluster_ready, 30)
    wait("the page to reconnect", lambda: not driver.find_element(By.ID, "banner").is_displayed()
         and text(driver, "#conn") == "live", 20)
    check_nodes(driver)
    shot(driver, "4-reconnected")
    check_console(driver, allow_unreachable=True)
    log("unreachable: said so, then reconnected")


def main():
    t0 = time.monotonic()
    for i in range(len(NODES)):
        start_daemon(i)
    wait(f"a {len(NODES)}-node cluster with the model loaded", cluster_ready, 30 + 3 * len(NODES))
    opts = Options()
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=WORK)}")
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.set_page_load_timeout(20)
        driver.get(URL)
        assert driver.title == "exo", driver.title
        check_nodes(driver)
        check_charts(driver)
        shot(driver, "1-cluster")
        check_chat(driver)
        shot(driver, "2-chat")
        check_unreachable(driver)
    except Exception:
        shot(driver, "failure")
        raise
    finally:
        driver.quit()
        for i in list(procs):
            stop_daemon(i)
    log(f"passed in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        log(f"FAILED: {e}")
        sys.exit(1)
