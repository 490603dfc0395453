"""``python -m sas_fast``: the ``sas-fast`` command."""

from .cli import main

raise SystemExit(main())
