"""Files that a reader sees whole or not at all, on local disks and shared file systems.

``write_atomic`` writes a temporary file beside the target (named by host and pid, so tasks on
different nodes sharing one folder never write the same temporary), syncs it, renames it over
the target and syncs the folder. Used for every record of a run folder that is rewritten whole
(status.json, identity.json, overrides.yaml, the checkpoints' ``latest``, metrics.jsonl cut back
on a resume, the rendezvous files); it needs no torch.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str, mode: int = 0o666) -> None:
    """``text`` into ``path`` all at once: a reader sees the old file or the new one, never a
    part. ``mode`` (less the umask) is the new file's from its creation on: 0o600 for a file that
    holds a secret is never readable by others, not even for a moment."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)
