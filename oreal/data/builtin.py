"""Data files shipped inside the package (``builtin:NAME`` in configs), pinned by sha256.

The hash is of the uncompressed bytes, so ``math_train12k.jsonl.gz`` carries the hash of the
original ``math_train12k.jsonl`` release.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from oreal.errors import OrealError

FILES_DIR = Path(__file__).with_name("files")
PREFIX = "builtin:"
SHA256 = {
    "math500.jsonl": "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132",
    "math_train12k.jsonl.gz": "0d1e626801b8a19fdde8622a81d2635a8eff8fe28f2dc8647555bac7faf03837",
}


class DataIntegrityError(OrealError, ValueError):
    """A file does not have the sha256 its config pins."""


def builtin_path(name: str) -> Path:
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    path = FILES_DIR / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in FILES_DIR.iterdir()))
        raise FileNotFoundError(f"no built-in data file {name!r}; shipped files: {known}")
    return path


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def sha256_of(path: Path) -> str:
    return hashlib.sha256(read_bytes(path)).hexdigest()


def verify(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise DataIntegrityError(f"{path}: sha256 {actual} does not match the pinned {expected}: the file was modified, "
                                 "or it is not the file the config pins")


def load_builtin_jsonl(name: str) -> list[dict]:
    """Rows of a shipped JSONL file, after checking its pinned hash."""
    path = builtin_path(name)
    verify(path, SHA256[path.name])
    return [json.loads(line) for line in read_bytes(path).decode("utf-8").splitlines() if line.strip()]
