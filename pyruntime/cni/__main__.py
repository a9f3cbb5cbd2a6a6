import sys

from pyruntime.cni.bridge import main

sys.exit(main())
