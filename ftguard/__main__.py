"""``python -m ftguard``: the same as the ``ftguard`` command (``accelerate launch -m ftguard``)."""

import sys

from ftguard.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
