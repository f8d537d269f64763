import sys

from hi3dgen_cli import main

sys.exit(main())
