"""Prompt datasets, templates, difficulty balance, the CPU task and evaluation sets."""
