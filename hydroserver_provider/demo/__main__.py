"""``python -m hydroserver_provider.demo`` (``make demo``); see :mod:`hydroserver_provider.demo`."""

from hydroserver_provider.demo import main

raise SystemExit(main())
