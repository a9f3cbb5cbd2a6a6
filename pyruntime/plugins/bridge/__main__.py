"""`python -m pyruntime.plugins.bridge`: the plugin, without an installed console script."""

import sys

from pyruntime.plugins.bridge.main import main

sys.exit(main())
