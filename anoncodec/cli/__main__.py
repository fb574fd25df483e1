import sys

from anoncodec.cli.main import main

sys.exit(main())
