"""An LLM judge behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

Asked only when the rule checker does not say correct. Every failure mode ends in a verdict
with a reason: ``judge_correct``, ``judge_incorrect``, or ``judge_error`` (server down, slow
past the deadline, HTTP error, or a reply that is not exactly one of the accepted words).
The API key is read from the environment by the caller and never appears in a log, an
exception message or a repr.

A judge that is down or never answers must not stall training: after
``max_consecutive_errors`` failures in a row the client stops asking (every answer it would
have judged is a ``judge_error`` at once) until a request succeeds again (one probe at a time
is let through), and :meth:`JudgeClient.health` lets a run check the server before it starts.
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

from oreal.errors import OrealError
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
    max_consecutive_errors: int = 16


class JudgeClient:
    def __init__(self, settings: JudgeSettings, api_key: Optional[str] = None):
        self.settings = settings
        self._api_key = api_key
        self._slots = threading.BoundedSemaphore(settings.max_concurrency)
        self._template = resources.files("oreal.reward").joinpath("prompts/judge.txt").read_text()
        self._lock = threading.Lock()
        self._failures_in_a_row = 0
        self._probing = False
        self.last_error = ""

    def __repr__(self) -> str:  # never show the key
        return f"JudgeClient(base_url={self.settings.base_url!r}, model={self.settings.model!r})"

    def health(self, timeout_s: float = 10.0) -> None:
        """Raise :class:`JudgeUnavailable` unless the server lists its models in time."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        request = urllib.request.Request(self.settings.base_url.rstrip("/") + "/models", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as reply:
                json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise JudgeUnavailable(f"the judge server answered HTTP {exc.code} to GET /models") from None
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise JudgeUnavailable(f"no answer from the judge server within {timeout_s:.0f} s "
                                   f"({type(reason).__name__})") from None

    def _admit(self) -> bool:
        """False while the judge is considered down (only one probe request at a time)."""
        with self._lock:
            if self._failures_in_a_row < self.settings.max_consecutive_errors:
                return True
            if self._probing:
                return False
            self._probing = True
            return True

    def _settle(self, ok: bool, error: str = "") -> None:
        with self._lock:
            self._probing = False
            self._failures_in_a_row = 0 if ok else self._failures_in_a_row + 1
            if not ok:
                self.last_error = error

    def judge(self, problem: str, response: str, gold: str) -> Grade:
        start = time.perf_counter()
        if not self._admit():
            return Grade.of("judge_error", detail=f"judge skipped after {self.settings.max_consecutive_errors} failures "
                                                  f"in a row ({self.last_error})")
        prompt = self._template.format(problem=problem or "(not given)", gold=gold, response=response[-MAX_RESPONSE_CHARS:])
        try:
            reply = self._complete(prompt, deadline=time.monotonic() + self.settings.deadline_s)
        except JudgeUnavailable as exc:
            self._settle(False, str(exc))
            return Grade.of("judge_error", latency_s=time.perf_counter() - start, detail=str(exc))
        self._settle(True)
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


class JudgeUnavailable(OrealError, RuntimeError):
    """The judge could not give a verdict (down, slow, rejected, or failing too often)."""
