"""``oreal train ARGS`` == ``python -m oreal.train ARGS`` (Hydra parses ``sys.argv``)."""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str]) -> int:
    from oreal import train

    if status := train.validate_command_line(list(argv)):
        return status
    sys.argv = ["oreal.train", *argv]
    train.main()
    return 0
