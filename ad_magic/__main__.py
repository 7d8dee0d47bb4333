"""``python -m ad_magic grade PATH... --out DIR``: the ``ad-magic`` command (see :mod:`ad_magic.practical.cli`)."""
import sys

from ad_magic.practical.cli import main

if __name__ == "__main__":
    sys.exit(main())
