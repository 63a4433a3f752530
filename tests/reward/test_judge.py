"""The LLM-judge client against local HTTP servers: one that answers, one that is slow, one
that fails then recovers, one that replies nonsense, and a port where nothing listens.
(tests/reward/test_judge_vllm.py runs it against a real `vllm serve`.)"""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oreal.reward.judge import JudgeClient, JudgeSettings, parse_verdict


@pytest.mark.parametrize("reply,verdict", [
    ("CORRECT", True), ("INCORRECT", False), ("correct.", True), ("**INCORRECT**", False), (" A ", True), ("B", False),
    ("", None), ("The answer is CORRECT", None), ("CORRECT INCORRECT", None), ("yes", None), ("C", None),
])
def test_verdict_parsing_accepts_exactly_the_verdict_words(reply, verdict):
    assert parse_verdict(reply) is verdict


class Server:
    """An OpenAI-compatible stub; `behaviour(request_number) -> (status, reply text, delay_s)`."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.requests = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                    n = len(outer.requests)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                status, text, delay = outer.behaviour(n)
                time.sleep(delay)
                with outer.lock:
                    outer.in_flight -= 1
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def client(url, **kw):
    settings = dict(base_url=url, model="judge", max_concurrency=4, request_timeout_s=2.0, max_retries=2, deadline_s=10.0, backoff_s=0.05)
    settings.update(kw)
    return JudgeClient(JudgeSettings(**settings), api_key="sk-test-secret")


def test_verdicts_and_request_format():
    server = Server(lambda n: (200, "CORRECT" if n == 1 else "INCORRECT", 0))
    try:
        judge = client(server.url)
        assert judge.judge("What is 1+1?", r"so \boxed{2}", "2").reason == "judge_correct"
        assert judge.judge("What is 1+1?", r"so \boxed{3}", "2").reason == "judge_incorrect"
        req = server.requests[0]
        assert req["path"] == "/v1/chat/completions" and req["body"]["model"] == "judge"
        prompt = req["body"]["messages"][0]["content"]
        assert "What is 1+1?" in prompt and r"\boxed{2}" in prompt and "CORRECT" in prompt
        assert req["auth"] == "Bearer sk-test-secret"
        assert "sk-test-secret" not in repr(judge)
    finally:
        server.close()


def test_unparseable_reply_is_a_judge_error_not_a_silent_minus_one():
    server = Server(lambda n: (200, "I think the student is right", 0))
    try:
        g = client(server.url).judge("p", "r", "g")
        assert (g.correct, g.reason) == (False, "judge_error") and "unparseable" in g.detail
    finally:
        server.close()


def test_server_down_is_a_judge_error_after_retries():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    start = time.perf_counter()
    g = client(f"http://127.0.0.1:{port}/v1").judge("p", "r", "g")
    assert g.reason == "judge_error" and "3 attempt" in g.detail
    assert time.perf_counter() - start < 5


def test_slow_server_is_cut_off_by_the_deadline():
    server = Server(lambda n: (200, "CORRECT", 30))
    try:
        start = time.perf_counter()
        g = client(server.url, request_timeout_s=1.0, deadline_s=2.5, max_retries=5).judge("p", "r", "g")
        elapsed = time.perf_counter() - start
        assert g.reason == "judge_error" and 2.0 < elapsed < 4.0
    finally:
        server.close()


def test_server_errors_are_retried_with_backoff():
    server = Server(lambda n: (503, "", 0) if n < 3 else (200, "A", 0))
    try:
        g = client(server.url).judge("p", "r", "g")
        assert g.reason == "judge_correct" and len(server.requests) == 3
    finally:
        server.close()


def test_client_errors_are_not_retried():
    server = Server(lambda n: (401, "", 0))
    try:
        g = client(server.url).judge("p", "r", "g")
        assert g.reason == "judge_error" and "HTTP 401" in g.detail and len(server.requests) == 1
        assert "sk-test-secret" not in g.detail
    finally:
        server.close()


def test_concurrency_is_limited():
    server = Server(lambda n: (200, "CORRECT", 0.3))
    try:
        judge = client(server.url, max_concurrency=3)
        threads = [threading.Thread(target=judge.judge, args=("p", "r", "g")) for _ in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(server.requests) == 9 and server.max_in_flight == 3
    finally:
        server.close()


def test_grader_asks_the_judge_only_when_the_rule_does_not_say_correct():
    from oreal.reward import Grader, GradingPool

    server = Server(lambda n: (200, "CORRECT", 0))
    try:
        with GradingPool(num_workers=1) as pool:
            grader = Grader(pool, client(server.url))
            grades = grader.grade_batch([r"\boxed{2}", r"\boxed{two}", r"\boxed{9}"], ["2", "2", "2"],
                                        finish_reasons=[None, None, "length"], problems=["1+1"] * 3)
            stats = pool.stats()
        assert [g.reason for g in grades] == ["correct", "judge_correct", "truncated"]
        assert len(server.requests) == 1
        assert stats["reward/num_graded"] == 3 and stats["reward/reason/judge_correct"] == 1
    finally:
        server.close()


def test_build_grader_reads_the_key_from_the_environment(monkeypatch):
    from oreal.config.schema import RewardConfig
    from oreal.reward import build_grader

    cfg = RewardConfig(num_workers=1)
    cfg.judge.enabled = True
    cfg.judge.api_key_env = "OREAL_TEST_JUDGE_KEY"
    monkeypatch.setenv("OREAL_TEST_JUDGE_KEY", "sk-from-env")
    grader = build_grader(cfg)
    try:
        assert grader.judge._api_key == "sk-from-env"
        assert "sk-from-env" not in repr(grader.judge) and "sk-from-env" not in repr(cfg)
    finally:
        grader.close()
