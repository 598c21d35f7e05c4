"""The ``ftguard`` command: :mod:`ftguard.cli.main` wires one module per command, sharing
the option groups of :mod:`ftguard.cli.options`.

``ftguard.cli:main`` (the entry point of ``ftguard`` scripts installed before the package
existed) is the function :func:`ftguard.cli.main.main`: it is bound here, after the submodule
of the same name, so the package attribute ``main`` is always the function (import the
module's other names with ``from ftguard.cli.main import ...``). The command modules import
their heavy dependencies inside their handlers, so this loads no torch.
"""

from ftguard.cli.main import main

__all__ = ["main"]
