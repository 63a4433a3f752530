"""An LLM judge behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

Asked only when the rule checker does not say correct. Every failure mode ends in a verdict
with a reason: ``judge_correct``, ``judge_incorrect``, or ``judge_error`` (server down, slow
past the deadline, HTTP error, or a reply that is not exactly one of the accepted words).
The API key is read from the environment by the caller and never appears in a log, an
exception message or a repr.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from typing import Optional

from oreal.reward.pool import Grade

_ACCEPT = {"CORRECT": True, "A": True, "INCORRECT": False, "B": False}
MAX_RESPONSE_CHARS = 4000


def parse_verdict(reply: str) -> Optional[bool]:
    """True / False for exactly CORRECT / INCORRECT (or A / B), ignoring case, surrounding
    whitespace, markdown bold and a final period; None for anything else."""
    token = reply.strip().strip("*").strip().rstrip(".").strip().upper()
    return _ACCEPT.get(token)


@dataclass(frozen=True)
class JudgeSettings:
    base_url: str
    model: str
    max_concurrency: int = 16
    request_timeout_s: float = 60.0
    max_retries: int = 3
    deadline_s: float = 600.0
    backoff_s: float = 0.5


class JudgeClient:
    def __init__(self, settings: JudgeSettings, api_key: Optional[str] = None):
        self.settings = settings
        self._api_key = api_key
        self._slots = threading.BoundedSemaphore(settings.max_concurrency)
        self._template = resources.files("oreal.reward").joinpath("prompts/judge.txt").read_text()

    def __repr__(self) -> str:  # never show the key
        return f"JudgeClient(base_url={self.settings.base_url!r}, model={self.settings.model!r})"

    def judge(self, problem: str, response: str, gold: str) -> Grade:
        start = time.perf_counter()
        prompt = self._template.format(problem=problem or "(not given)", gold=gold, response=response[-MAX_RESPONSE_CHARS:])
        try:
            reply = self._complete(prompt, deadline=time.monotonic() + self.settings.deadline_s)
        except JudgeUnavailable as exc:
            return Grade.of("judge_error", latency_s=time.perf_counter() - start, detail=str(exc))
        verdict = parse_verdict(reply)
        elapsed = time.perf_counter() - start
        if verdict is None:
            return Grade.of("judge_error", latency_s=elapsed, detail=f"unparseable judge reply: {reply[:80]!r}")
        return Grade.of("judge_correct" if verdict else "judge_incorrect", latency_s=elapsed)

    def _complete(self, prompt: str, deadline: float) -> str:
        s = self.settings
        body = json.dumps({"model": s.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": 0.0, "max_tokens": 8}).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last_error = "no attempt made"
        for attempt in range(s.max_retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            request = urllib.request.Request(s.base_url.rstrip("/") + "/chat/completions", data=body, headers=headers)
            with self._slots:
                try:
                    with urllib.request.urlopen(request, timeout=min(s.request_timeout_s, remaining)) as reply:
                        payload = json.loads(reply.read())
                    return payload["choices"][0]["message"]["content"] or ""
                except urllib.error.HTTPError as exc:
                    last_error = f"HTTP {exc.code}"
                    if exc.code < 500 and exc.code != 429:
                        raise JudgeUnavailable(f"judge request rejected: {last_error}") from None
                except (urllib.error.URLError, TimeoutError, OSError) as exc:
                    last_error = type(getattr(exc, "reason", exc)).__name__
                except (ValueError, KeyError, IndexError, TypeError):
                    raise JudgeUnavailable("malformed judge response") from None
            time.sleep(max(0.0, min(s.backoff_s * 2**attempt, deadline - time.monotonic())))
        raise JudgeUnavailable(f"judge unavailable after {attempt + 1} attempt(s): {last_error}")


class JudgeUnavailable(RuntimeError):
    pass
