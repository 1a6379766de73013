"""``python -m hwcost``: the CLI, for launchers that run modules (``torchrun -m hwcost``)."""

from .cli import main

main()
