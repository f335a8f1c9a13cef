"""``python -m mailpipe``: the ``mailpipe`` command line."""

import sys

from mailpipe.handlers.cli import main

sys.exit(main())
