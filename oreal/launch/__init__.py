"""Getting runs onto a cluster: planning (``plan``), and Slurm submission."""
