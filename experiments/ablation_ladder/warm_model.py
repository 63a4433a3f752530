"""Print the directory of a config's starting model: the SFT warm start for the CPU experiments
(trained first if it is not in the cache yet; progress goes to stderr, the path alone to stdout).

    .venv/bin/python experiments/ablation_ladder/warm_model.py experiment=ablation_ladder
"""

import contextlib
import sys

from oreal.config import load_config
from oreal.trainer.setup import starting_model

if __name__ == "__main__":
    cfg = load_config(sys.argv[1:])
    with contextlib.redirect_stdout(sys.stderr):
        path = starting_model(cfg, progress=False)
    print(path)
