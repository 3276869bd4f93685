"""``python -m robustbench_lite`` runs the CLI."""

import sys

from robustbench_lite.cli.main import main

sys.exit(main())
