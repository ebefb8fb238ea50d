import sys

from lockedge.cli import main

sys.exit(main())
