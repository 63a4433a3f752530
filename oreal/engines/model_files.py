"""Where a model's files are: ``model.path`` as a local folder or a Hugging Face hub id.

A hub id (``org/name``) is downloaded once into ``<cache_dir>/hub``, under a file lock so that
the many tasks of a job (which all start together) download it once and the others wait; the
cache must be on a file system every node shares (the run folders already are). With no
network, or an id the hub does not know, the error names ``model.path`` and the way out.
"""

from __future__ import annotations

import fcntl
import re
from pathlib import Path

from oreal.errors import ModelPathError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_hub_id(path: str) -> bool:
    return bool(_HUB_ID.match(path)) and ".." not in path


def resolve_model_path(path: str, cache_dir: str) -> str:
    """A local folder holding a model's files, for ``path`` (a folder or a hub id)."""
    local = Path(path).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise ModelPathError(f"model.path={path}: the folder has no config.json; point it at a Hugging Face model folder")
        return str(local)
    if not looks_like_hub_id(path):
        raise ModelPathError(f"model.path={path}: no such folder, and not a Hugging Face hub id (like Qwen/Qwen2.5-7B); "
                             "give a local model folder or a hub id")
    return _download(path, Path(cache_dir) / "hub")


def _download(repo_id: str, cache: Path) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    cache.mkdir(parents=True, exist_ok=True)
    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]
    with open(cache / f".{repo_id.replace('/', '--')}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one task downloads; the others find it cached
        try:
            return snapshot_download(repo_id, cache_dir=str(cache), local_files_only=True, allow_patterns=patterns)
        except LocalEntryNotFoundError:
            pass
        try:
            return snapshot_download(repo_id, cache_dir=str(cache), allow_patterns=patterns)
        except RepositoryNotFoundError:
            raise ModelPathError(f"model.path={repo_id}: the Hugging Face hub has no such model (or it is gated and "
                                 "HF_TOKEN is not set)") from None
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            raise ModelPathError(
                f"model.path={repo_id}: not in the cache {cache} and the hub is unreachable ({type(exc).__name__}); on a "
                f"machine with a network run `huggingface-cli download {repo_id} --cache-dir {cache}`, or set "
                "model.path to a local folder") from None
