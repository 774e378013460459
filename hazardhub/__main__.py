import sys

from hazardhub.cli import main

sys.exit(main())
