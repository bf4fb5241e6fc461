"""Start Gatehouse with Flask's server (``make run``). Production uses a WSGI server."""

import os
import sys

from config import ConfigurationError

try:
    from app import create_app

    app = create_app()
except ConfigurationError as exc:
    sys.exit(f"gatehouse: refusing to start: {exc}")

if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    print(f" * Gatehouse ({app.config['ENV_NAME']}) on http://{host}:{port}")
    print(f" * Swagger UI: http://{host}:{port}/api/v1/docs")
    print(f" * OpenAPI document: http://{host}:{port}/api/v1/swagger.json")
    app.run(host=host, port=port, debug=app.config["DEBUG"], use_reloader=False)
