"""`python -m que.cli`: the `que` command."""

import sys

from que.cli.commands import main

sys.exit(main())
