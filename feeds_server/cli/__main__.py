"""`python -m feeds_server.cli`: the same commands as `feeds-server`."""

import sys

from feeds_server.cli.main import main

sys.exit(main())
