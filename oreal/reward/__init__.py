"""Rewards: answer extraction, equivalence checking, the grading pool and the LLM judge.

``grade(response, gold) -> Grade`` is the public entry; it is thread-safe and runs every
check in a memory-capped worker process under a timeout. How answers are read and compared
(boxes, lists, labels, relations, numbers, and when Math-Verify is asked as a second stage)
is stated in :mod:`oreal.reward.answers`.
"""

from oreal.reward.checker import REASONS
from oreal.reward.grader import Grader, build_grader, grade, grade_batch
from oreal.reward.pool import Grade, GradingPool

__all__ = ["REASONS", "Grade", "Grader", "GradingPool", "build_grader", "grade", "grade_batch"]
