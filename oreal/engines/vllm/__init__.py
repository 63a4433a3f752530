"""vLLM rollouts (the only package that imports vllm)."""

from oreal.engines.vllm.engine import VLLMRolloutEngine

__all__ = ["VLLMRolloutEngine"]
