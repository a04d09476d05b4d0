"""`python -m kmgrammar ...`: the same command line as the `kmgrammar` console script."""

import sys

from .cli import main

sys.exit(main())
