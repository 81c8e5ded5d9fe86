"""``python -m hydroserver_provider.testing serve ...``.

See :mod:`hydroserver_provider.testing.cli`.
"""

from hydroserver_provider.testing.cli import main

raise SystemExit(main())
