import sys

from hydroserver_provider.cli import main

sys.exit(main())
