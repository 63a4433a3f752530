"""Reads what W&B wrote to an offline run's ``run-<id>.wandb`` file, so tests can check the
logged history without a network. The file is a 7-byte W&B header followed by a LevelDB-style
log: 32 KiB blocks of records, each with a 7-byte header (crc32, length, type) and a
protobuf ``Record`` (split over FIRST/MIDDLE/LAST records when long)."""

import glob
import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        body = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending + body)
            pending = b""
            yield record
        else:
            pending += body


def offline_runs(run_dir):
    # escaped: sweep folders are named from overrides such as `levels=[1]`
    return sorted(glob.glob(str(Path(glob.escape(str(run_dir))) / "wandb" / "offline-run-*" / "run-*.wandb")))


def history(path) -> list[dict]:
    rows = []
    for r in records(path):
        if r.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item})
    return rows


def run_info(path) -> dict:
    for r in records(path):
        if r.WhichOneof("record_type") == "run":
            config = {item.key: json.loads(item.value_json) for item in r.run.config.update}
            return {"id": r.run.run_id, "group": r.run.run_group, "job_type": r.run.job_type, "config": config}
    raise AssertionError(f"no run record in {path}")


def exit_code(path) -> int | None:
    """The exit code the run finished with (None: the file has no exit record)."""
    for r in records(path):
        if r.WhichOneof("record_type") == "exit":
            return r.exit.exit_code
    return None
