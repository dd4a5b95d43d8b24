"""`python -m neural_renderer`: the `portrait` command (neural_renderer/cli.py)."""

import sys

from neural_renderer.cli import main

sys.exit(main())
