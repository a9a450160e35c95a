import sys

from tapmesh.cli import main

sys.exit(main())
