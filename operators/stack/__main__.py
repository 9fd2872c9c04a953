import sys

from operators.stack.cli import main

sys.exit(main())
