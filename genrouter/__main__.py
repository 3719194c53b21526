"""``python -m genrouter …``: the ``genrouter`` command (see :mod:`genrouter.cli`)."""

from genrouter.cli import main

raise SystemExit(main())
