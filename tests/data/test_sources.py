import gzip
import json

import pytest

from oreal.config.schema import FieldMap, SourceConfig
from oreal.data.builtin import DataIntegrityError, load_builtin_jsonl
from oreal.data.sources import DataError, load_source

MATH_FIELDS = FieldMap(problem="problem", answer="answer", subject="subject", level="level", id="unique_id")


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_shipped_files_are_pinned_and_complete():
    math500 = load_builtin_jsonl("math500.jsonl")
    train = load_builtin_jsonl("math_train12k.jsonl.gz")
    assert (len(math500), len(train)) == (500, 11998)
    assert not {r["problem"] for r in math500} & {r["problem"] for r in train}


def test_config_entries_load_with_their_hashes(tiny_config):
    from oreal.config import load_config

    cfg = load_config(["data=math_train"])
    train = load_source(cfg.data.train["math_train"])
    evalset = load_source(cfg.data.eval["math500"].source)
    assert len(train) == 11998 and len(evalset) == 500
    assert evalset[0].subject and evalset[0].level and evalset[0].id.startswith("test/")


def test_modified_file_fails_its_hash(tmp_path):
    good = load_builtin_jsonl("math500.jsonl")
    path = write(tmp_path / "m.jsonl", good[:-1] + [dict(good[-1], answer="42")])
    src = SourceConfig(path=str(path), sha256="35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132", fields=MATH_FIELDS)
    with pytest.raises(DataIntegrityError, match="does not match the pinned"):
        load_source(src)


@pytest.mark.parametrize("row,message", [
    ({"answer": "1"}, r":2: missing field 'question'"),
    ({"question": "q", "answer": ["1"]}, r":2: field 'answer' must be str or int or float, got list"),
    ({"question": 3, "answer": "1"}, r":2: field 'question' must be str, got int"),
    ({"question": "q", "answer": "1", "rate": 1.5}, r":2: field 'rate' must be in \[0, 1\], got 1.5"),
    ({"question": "q", "answer": "1"}, r":2: missing field 'rate'"),
    ("{broken", r":2: not valid JSON"),
    ("[1, 2]", r":2: expected an object, got list"),
])
def test_malformed_rows_name_file_line_and_field(tmp_path, row, message):
    path = write(tmp_path / "d.jsonl", [{"question": "fine", "answer": "2", "rate": 0.5}, row])
    src = SourceConfig(path=str(path), fields=FieldMap(problem="question", answer="answer", pass_rate="rate"))
    with pytest.raises(DataError, match=str(path).replace(".", r"\.") + message):
        load_source(src)


def test_jsonl_gz_parquet_and_datasets_loader_agree(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": f"q{i}", "gold_answer": str(i), "pass_rate": i / 10} for i in range(6)]
    fields = FieldMap(problem="question", answer="gold_answer", pass_rate="pass_rate")
    jsonl = write(tmp_path / "p.jsonl", rows)
    gz = tmp_path / "p.jsonl.gz"
    gz.write_bytes(gzip.compress(jsonl.read_bytes()))
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    folder = tmp_path / "hub_like"  # what load_dataset(NAME) sees in a dataset repo
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), folder / "train-00000-of-00001.parquet")

    loaded = [load_source(SourceConfig(path=str(p), kind=k, fields=fields))
              for p, k in ((jsonl, "auto"), (gz, "auto"), (parquet, "auto"), (folder, "hub"), (parquet, "hub"))]
    key = lambda ps: [(p.problem, p.answer, p.pass_rate) for p in ps]  # noqa: E731
    assert all(key(x) == key(loaded[0]) for x in loaded)
    assert key(loaded[0])[3] == ("q3", "3", 0.3)


def test_limit_and_cpu_task_splits(tiny_config):
    heldout = load_source(SourceConfig(path="heldout", kind="cpu_task"), tiny_config.data.cpu_task)
    assert len(heldout) == tiny_config.data.cpu_task.num_heldout
    assert len(load_source(SourceConfig(path="train", kind="cpu_task", limit=7), tiny_config.data.cpu_task)) == 7
    with pytest.raises(DataError, match="no split 'dev'"):
        load_source(SourceConfig(path="dev", kind="cpu_task"), tiny_config.data.cpu_task)


def test_unknown_kind_is_explained():
    with pytest.raises(DataError, match="set kind to jsonl, parquet, hub or cpu_task"):
        load_source(SourceConfig(path="data.csv"))
