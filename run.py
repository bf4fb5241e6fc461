"""Start Gatehouse with Flask's server (``make run``); production serves ``run:app`` with gunicorn.

``HOST`` (default 127.0.0.1) and ``PORT`` (default 5000 here, 8000 under gunicorn) say where.
"""

import logging
import os
import sys

from config import ConfigurationError

try:
    from app import create_app

    app = create_app()
except ConfigurationError as exc:
    sys.exit(f"gatehouse: refusing to start: {exc}")

if __name__ == "__main__":
    # The app writes its own access log, without query strings (they may hold a token);
    # Werkzeug's would repeat every request line in full.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    print(f" * Gatehouse ({app.config['ENV_NAME']}) on http://{host}:{port}")
    print(f" * Swagger UI: http://{host}:{port}/api/v1/docs")
    print(f" * OpenAPI document: http://{host}:{port}/api/v1/swagger.json")
    app.run(host=host, port=port, debug=app.config["DEBUG"], use_reloader=False)
