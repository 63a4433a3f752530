"""The grading pool: hostile inputs, timeouts, killed workers, memory caps, threads."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from oreal.reward import REASONS, Grade, GradingPool, Grader


@pytest.fixture(scope="module")
def pool():
    with GradingPool(num_workers=2, timeout_s=5.0) as p:
        yield p


def hostile_inputs(marker):
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"exec(\"open('{marker}', 'w').write('x')\")",
        f"eval(compile('open(\"{marker}\",\"w\")', 'x', 'exec'))",
        f"\\text{{__import__('os').system('touch {marker}')}}",
        f"x + __import__('os').system('touch {marker}')",
        f"lambda: open('{marker}', 'w')",
    ]
    cases = [(r"\boxed{%s}" % p, "5") for p in payloads] + [("5", r"\boxed{%s}" % p) for p in payloads]
    cases += [
        (r"\boxed{10^{10^{10}}}", "5"),
        (r"\boxed{10^{10^{10}}}", r"10^{10^{9}}"),
        (r"\boxed{2^{2^{2^{2^{2^{2}}}}}}", "4"),
        (r"\boxed{9^{9^{9^{9}}}}", r"9^{9^{9^{9}}}"),
        (r"\boxed{(10^{100000})!}", "1"),
        (r"\boxed{999999999!}", "1"),
        ("x" * (1 << 20) + r" \boxed{7}", "7"),
        (r"\boxed{" + "{" * 10000 + "1" + "}" * 10000 + "}", "1"),
        ("{" * 10000 + r"\boxed{3}", "3"),
        (r"\boxed{\frac{\frac{\sqrt{}}{}{\left(\right.}", "1"),
        (r"\boxed{\begin{pmatrix} 1 & \\ \end{matrix}}", "1"),
        (r"\boxed{\\\\\\\\}", "1"),
        (r"\boxed{" + "(" * 5000 + ")" * 5000 + "}", "1"),
        (r"\boxed{" + "+".join(["x"] * 3000) + "}", "3000x"),
    ]
    return cases


def test_hostile_inputs_return_in_time_and_execute_nothing(pool, tmp_path):
    marker = tmp_path / "pwned"
    cases = hostile_inputs(marker)
    start = time.perf_counter()
    grades = Grader(pool).grade_batch([r for r, _ in cases], [g for _, g in cases])
    elapsed = time.perf_counter() - start
    assert not marker.exists()
    for (response, gold), g in zip(cases, grades):
        assert g.reason in REASONS
        assert g.latency_s < pool.timeout_s + 2.0, (response[:80], g)
    # right answers inside hostile text are still graded right
    by_case = dict(zip([r[:40] for r, _ in cases], grades))
    assert by_case[("x" * 40)].correct and by_case["{" * 40].correct
    assert elapsed < len(cases) * (pool.timeout_s + 2.0)


def test_timeout_kills_the_worker_and_the_pool_recovers():
    with GradingPool(num_workers=1, timeout_s=0.05) as p:
        pid_before = p._idle.queue[0].proc.pid
        # sympy's simplify of this difference takes far longer than 50 ms
        g = p.check(r"\boxed{(x+1)^{40}-(x-1)^{40}}", r"(x+2)^{40}")
        assert (g.correct, g.reason) == (False, "timeout")
        pid_after = p._idle.queue[0].proc.pid
        assert pid_after != pid_before
        with pytest.raises(ProcessLookupError):
            os.kill(pid_before, 0)
        p.timeout_s = 5.0
        assert p.check(r"\boxed{4}", "4").reason == "correct"
        assert p.stats()["reward/reason/timeout"] == 1.0


def test_a_worker_killed_from_outside_is_replaced():
    with GradingPool(num_workers=1, timeout_s=5.0) as p:
        worker = p._idle.queue[0]
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        g = p.check(r"\boxed{1}", "1")
        assert g.reason == "parse_error" and "died" in g.detail
        assert p.check(r"\boxed{1}", "1").reason == "correct"


def test_workers_run_under_a_memory_cap():
    with GradingPool(num_workers=1, memory_mb=1536) as p:
        limits = open(f"/proc/{p._idle.queue[0].proc.pid}/limits").read()
        line = next(l for l in limits.splitlines() if l.startswith("Max address space"))
        assert line.split()[3] == str(1536 * 2**20)


def test_string_evaluation_is_disarmed_in_workers():
    code = (
        "from oreal.reward.worker import disarm_string_evaluation, UnsafeEvaluation\n"
        "disarm_string_evaluation()\n"
        "import sympy\n"
        "from latex2sympy2_extended import latex2sympy\n"
        "assert latex2sympy(r'\\frac{1}{2}') == sympy.Rational(1, 2)\n"
        "assert latex2sympy(r'3.25 + 2x') == sympy.Float('3.25') + 2 * sympy.Symbol('x')\n"
        "assert sympy.sympify('12') == 12\n"
        # arithmetic on numerals is built from the parse tree (Math-Verify extracts `2/3` from prose)
        "assert sympy.sympify('(1/2) * (4/3) + 2**3') == sympy.Rational(26, 3)\n"
        "assert abs(sympy.parse_expr('2/3.', evaluate=False).doit() - sympy.Rational(2, 3)) < 1e-15\n"
        "for f in (lambda: sympy.S('x'), lambda: sympy.parse_expr('1+x'), lambda: sympy.sympify('__import__(\"os\")'),\n"
        "          lambda: sympy.sympify('(1).__class__'), lambda: sympy.sympify('9**9**9'), lambda: sympy.sympify('2**1000'),\n"
        "          lambda: sympy.sympify('[1][0]'), lambda: sympy.sympify('1 if 1 else 2')):\n"
        "    try:\n"
        "        f()\n"
        "    except UnsafeEvaluation:\n"
        "        continue\n"
        "    raise SystemExit('string evaluation was not disarmed')\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_grade_is_thread_safe(pool):
    results = {}

    def work(i):
        results[i] = pool.check(r"\boxed{%d}" % i, str(i if i % 3 else i + 1))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i].correct == bool(i % 3) for i in range(24))


def test_stats_count_reasons_and_latency():
    with GradingPool(num_workers=1) as p:
        grader = Grader(p)
        grader.grade_batch([r"\boxed{1}", r"\boxed{2}", "none", "cut"], ["1", "1", "1", "1"], finish_reasons=[None, None, None, "length"])
        s = p.stats(reset=True)
        assert (s["reward/reason/correct"], s["reward/reason/incorrect"], s["reward/reason/no_answer"], s["reward/reason/truncated"]) == (1, 1, 1, 1)
        assert s["reward/num_graded"] == 4 and s["reward/timeout_rate"] == 0.0
        assert 0 < s["perf/grade_latency_p50_ms"] <= s["perf/grade_latency_p99_ms"]
        assert p.stats()["reward/num_graded"] == 0


def test_public_grade_function():
    from oreal.reward import grade

    g = grade(r"The area is \boxed{\dfrac{1}{2}}", "0.5")
    assert g == Grade(True, "correct", r"\dfrac{1}{2}", g.latency_s)
    assert grade("anything", "1", finish_reason="length").reason == "truncated"
