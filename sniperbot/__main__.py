"""``python -m sniperbot`` is the ``sniperbot`` command."""

import sys

from sniperbot.cli.main import main

sys.exit(main())
