"""``python -m localize.report logs/runs [--out DIR] [--metric test/f1]``."""
import sys

from localize.report import main

sys.exit(main())
