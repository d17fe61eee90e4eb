"""``python -m gateway.fake``: the same as ``gateway fake-upstream``."""

import sys

from gateway.fake.cli import main

sys.exit(main())
