"""``python -m msa_lib``: the course's command line (see :mod:`msa_lib.cli`)."""

import sys

from msa_lib.cli import main

if __name__ == "__main__":
    sys.exit(main())
