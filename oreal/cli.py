"""The ``oreal`` command: a thin dispatcher to each tool's own ``main(argv)``.

Sub-commands are imported lazily so ``oreal grade`` never pays for importing vLLM.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

# name -> ("module" or "module:function" taking argv and returning an exit code, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("oreal.train_cli", "run training (same as `python -m oreal.train`; Hydra overrides)"),
    "config": ("oreal.config.cli", "print the resolved, validated config for some overrides"),
    "init-tiny": ("oreal.engines.cli", "build the tiny Qwen2 model and tokenizer locally (no hub access)"),
    "grade": ("oreal.reward.cli", "grade a JSONL file of {response, gold} rows and summarise by reason"),
    "eval": ("oreal.evaluation_cli:eval_main", "pass@1 / pass@k / maj@k of a model on the configured eval sets"),
    "plan": ("oreal.launch.plan", "dry run: parameters, node roles and per-GPU memory of a config on its cluster"),
    "submit": ("oreal.launch.submit", "submit a sweep to Slurm (Hydra multirun, submitit) and return at once"),
    "sbatch": ("oreal.launch.sbatch", "render a plain sbatch script (or --hetjob) for a config, for use without submitit"),
    "passrate": ("oreal.evaluation_cli:passrate_main", "estimate each training prompt's pass rate with a policy"),
    "compare": ("oreal.compare.cli", "a sweep's variants side by side: table over seeds, config differences, --plot curves"),
    "export": ("oreal.export", "a run folder or checkpoint as a Hugging Face model folder (weights, config, tokenizer)"),
    "status": ("oreal.compare.status_cli", "one line per run of a sweep: state, step reached, why it failed or stopped"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: oreal <command> [args]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"oreal: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, _, function = COMMANDS[name][0].partition(":")
    return int(getattr(importlib.import_module(module_name), function or "main")(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
