"""``python -m edgerun.cli``: the same as the ``edgerun`` command."""

from edgerun.cli import main

main()
