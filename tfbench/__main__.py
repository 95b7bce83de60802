"""`python -m tfbench` (and `torchrun -m tfbench`) runs the CLI."""

from tfbench.cli import main

main()
