"""``python -m spoolproxy`` is the ``spoolproxy`` command."""
from .cli import main

raise SystemExit(main())
