"""The judge client against a real `vllm serve` of the tiny model on 127.0.0.1.

A 1M-parameter model's verdicts mean nothing; what is tested is the protocol end to end (the
request reaches the OpenAI-compatible server and its reply is parsed into a verdict with a
reason), authentication, the deadline, and a server that goes away mid-run.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from oreal.reward.judge import JudgeClient, JudgeSettings

pytestmark = pytest.mark.slow
KEY = "sk-oreal-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--dtype", "float32", "--max-model-len", "512", "--kv-cache-memory-bytes", str(256 << 20),
           "--enforce-eager", "--api-key", KEY, "--served-model-name", "judge"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            req = urllib.request.Request(url + "/models", headers={"Authorization": f"Bearer {KEY}"})
            urllib.request.urlopen(req, timeout=2).read()
            break
        except OSError:
            time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("vllm serve did not come up within 240 s")
    yield proc, url
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def judge(url, key=KEY, **kw):
    settings = dict(base_url=url, model="judge", max_concurrency=4, request_timeout_s=30, max_retries=1, deadline_s=60, backoff_s=0.1)
    settings.update(kw)
    return JudgeClient(JudgeSettings(**settings), api_key=key)


def test_real_server_replies_are_parsed_into_verdicts(server):
    _, url = server
    grades = [judge(url).judge("What is 2+3?", f"so the answer is \\boxed{{{x}}}", "5") for x in (5, 6, 7)]
    for g in grades:
        # the request went through and the reply was read: a verdict, or a reply we refused to guess from
        assert g.reason in ("judge_correct", "judge_incorrect") or g.detail.startswith("unparseable judge reply"), g


def test_wrong_key_is_rejected_without_retry(server):
    _, url = server
    g = judge(url, key="sk-wrong").judge("p", "r", "g")
    assert g.reason == "judge_error" and g.detail == "judge request rejected: HTTP 401"


def test_deadline_shorter_than_a_request(server):
    _, url = server
    start = time.perf_counter()
    g = judge(url, request_timeout_s=0.001, deadline_s=0.5, max_retries=10).judge("p" * 2000, "r", "g")
    assert g.reason == "judge_error" and time.perf_counter() - start < 5


def test_server_gone_mid_run(server):
    proc, url = server
    client = judge(url, request_timeout_s=5, deadline_s=10)
    assert client.judge("p", "r", "g").detail != "judge request rejected: HTTP 401"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    g = client.judge("p", "r", "g")
    assert g.reason == "judge_error" and "unavailable" in g.detail
