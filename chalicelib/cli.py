"""``python -m chalicelib.cli …``: an alias of ``python -m devtools.cli …``.

The command line (``serve``, ``token``, ``migrate``, ``reindex``, ``sync``,
``dead-letters``, ``stop``, ``purge``, ``pii-reencrypt``) lives in ``devtools/``,
outside the Lambda bundle.
This module stays because clients, scripts and acceptance tests call the old
name; it imports ``devtools.cli`` only when run, so importing it costs nothing,
and the Lambda bundle leaves it out (``scripts/lambda_bundle.py``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from devtools.cli import main as devtools_main

    return devtools_main(argv)


if __name__ == "__main__":
    sys.exit(main())
