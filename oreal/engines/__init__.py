"""Engines: the rollout and policy protocols and their implementations.

vLLM is imported only under ``oreal.engines.vllm``, Megatron only under
``oreal.engines.megatron`` (import-linter contracts).
"""
