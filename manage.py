"""The command-line entry point: ``flask --app manage <command>``.

For ``db upgrade`` (connecting as ``MIGRATION_DATABASE_URL`` when set), ``keys generate`` and the
commands to come. It builds the app without what only serving needs, so a production migration
asks for no signing key or issuer. ``run.py`` (development) and ``gunicorn`` serve.
"""

import sys

from config import ConfigurationError

try:
    from app import create_app

    app = create_app(serving=False)
except ConfigurationError as exc:
    sys.exit(f"gatehouse: refusing to start: {exc}")
