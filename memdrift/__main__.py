import sys

from memdrift.experiments.cli import main

sys.exit(main())
