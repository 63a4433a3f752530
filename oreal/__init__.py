"""oreal: outcome-reward RL for mathematical reasoning (OREAL, Lyu et al. 2025), Slurm-native."""

__version__ = "0.1.0"
