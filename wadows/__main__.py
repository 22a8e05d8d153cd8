import sys

from wadows.cli import main

sys.exit(main())
