"""Prompt sources: JSONL / Parquet files, Hugging Face datasets by name, the CPU task.

Every source becomes a list of :class:`Prompt`. A row that lacks a mapped field, or has the
wrong type, stops loading with the file, the line (or row index) and the field, before
anything trains. A configured sha256 is checked before the file is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from oreal.config.schema import CPUTaskConfig, FieldMap, SourceConfig
from oreal.data.builtin import PREFIX, builtin_path, read_bytes, verify
from oreal.errors import OrealError


@dataclass(frozen=True)
class Prompt:
    problem: str
    answer: str
    id: str
    pass_rate: Optional[float] = None
    subject: Optional[str] = None
    level: Optional[str] = None


class DataError(OrealError, ValueError):
    """A malformed source: the message names the file, the line and the field."""


def resolve(path: str) -> Path:
    return builtin_path(path) if path.startswith(PREFIX) else Path(path)


def kind_of(src: SourceConfig) -> str:
    if src.kind != "auto":
        return src.kind
    name = src.path.removesuffix(".gz")
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise DataError(f"cannot tell the kind of data source {src.path!r}; set kind to jsonl, parquet, hub or cpu_task")


def _field(row: dict, name: Optional[str], where: str, required: bool, types: tuple) -> Any:
    if name is None:
        return None
    if name not in row or row[name] is None:
        if required:
            raise DataError(f"{where}: missing field {name!r}")
        return None
    value = row[name]
    if not isinstance(value, types) or isinstance(value, bool):
        raise DataError(f"{where}: field {name!r} must be {' or '.join(t.__name__ for t in types)}, got {type(value).__name__}")
    return value


def to_prompt(row: Any, fields: FieldMap, where: str, default_id: str) -> Prompt:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object, got {type(row).__name__}")
    problem = _field(row, fields.problem, where, True, (str,))
    answer = _field(row, fields.answer, where, True, (str, int, float))
    pass_rate = _field(row, fields.pass_rate, where, fields.pass_rate is not None, (int, float))
    if pass_rate is not None and not 0 <= pass_rate <= 1:
        raise DataError(f"{where}: field {fields.pass_rate!r} must be in [0, 1], got {pass_rate}")
    if not problem.strip():
        raise DataError(f"{where}: field {fields.problem!r} is empty")
    subject = _field(row, fields.subject, where, False, (str,))
    level = _field(row, fields.level, where, False, (str, int))
    ident = _field(row, fields.id, where, False, (str, int))
    return Prompt(problem, str(answer), str(ident) if ident is not None else default_id,
                  None if pass_rate is None else float(pass_rate), subject, None if level is None else str(level))


def _jsonl(src: SourceConfig) -> list[Prompt]:
    path = resolve(src.path)
    if src.sha256:
        verify(path, src.sha256)
    out = []
    for lineno, line in enumerate(read_bytes(path).decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
        out.append(to_prompt(row, src.fields, where, f"{path.name}:{lineno}"))
    return out


def _parquet(src: SourceConfig) -> list[Prompt]:
    import pyarrow.parquet as pq

    path = resolve(src.path)
    if src.sha256:
        verify(path, src.sha256)
    rows = pq.read_table(path).to_pylist()
    return [to_prompt(row, src.fields, f"{path} row {i}", f"{path.name}:{i}") for i, row in enumerate(rows)]


def _hub(src: SourceConfig) -> list[Prompt]:
    """A Hugging Face dataset by name (needs network or a local cache), or a local dataset
    folder / data file, through ``datasets.load_dataset``."""
    import datasets

    local = Path(src.path)
    if local.is_file():
        builder = "parquet" if local.suffix == ".parquet" else "json"
        ds = datasets.load_dataset(builder, data_files=str(local), split=src.split)
    else:
        ds = datasets.load_dataset(src.path, split=src.split)
    return [to_prompt(row, src.fields, f"{src.path}[{src.split}] row {i}", f"{src.path}:{i}") for i, row in enumerate(ds)]


def cpu_task_rows(split: str, task: CPUTaskConfig) -> list[dict]:
    """Rows (problem, solution, answer, level, subject, unique_id) of one CPU-task split."""
    from oreal.data import cpu_task

    rows = cpu_task.splits(task.seed, task.num_train, task.num_heldout, task.num_sft, task.levels, task.sft_answer_only_rate)
    if split not in rows:
        raise DataError(f"the CPU task has no split {split!r}; choose one of: {', '.join(rows)}")
    return rows[split]


def cpu_task_prompts(split: str, task: CPUTaskConfig) -> list[Prompt]:
    return [Prompt(r["problem"], r["answer"], r["unique_id"], None, r["subject"], str(r["level"])) for r in cpu_task_rows(split, task)]


LOADERS: dict[str, Callable[[SourceConfig], list[Prompt]]] = {"jsonl": _jsonl, "parquet": _parquet, "hub": _hub}


def load_source(src: SourceConfig, task: Optional[CPUTaskConfig] = None) -> list[Prompt]:
    """All prompts of one source: those of the configured ``levels`` if set, then the first
    ``limit`` of them."""
    kind = kind_of(src)
    if kind == "cpu_task":
        prompts = cpu_task_prompts(src.path, task or CPUTaskConfig())
    else:
        prompts = LOADERS[kind](src)
    if not prompts:
        raise DataError(f"data source {src.path!r} has no rows")
    if src.levels is not None:
        wanted = {str(level) for level in src.levels}
        found = sorted({str(p.level) for p in prompts})
        prompts = [p for p in prompts if p.level is not None and p.level in wanted]
        if not prompts:
            raise DataError(f"data source {src.path!r}: no prompt has a level in levels={sorted(wanted)}; "
                            f"its levels: {', '.join(found)} (is fields.level mapped?)")
    return prompts[: src.limit] if src.limit else prompts


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
