"""The framework ceiling: a bare Flask JSON endpoint, served like Gatehouse.

    gunicorn -c gunicorn.conf.py bench.bare_app:app     # what bench/run.py starts

``GET /ping`` answers ``{"ok": true}``: no database, no token, no middleware, no logging, so what
it costs is Flask, the WSGI call and gunicorn.conf.py's worker (workers, threads, keep-alive,
request buffering, recycling), which is what every cheap Gatehouse request pays before its own
work. Importing ``run`` builds the Gatehouse app in the master, as ``run:app`` does: the
configuration's ``post_fork`` hook imports it in every worker, and preloaded it is not built
again each time a worker is recycled. The environment must be the one Gatehouse would get.
"""

from __future__ import annotations

from flask import Flask, jsonify

import run  # noqa: F401  (see above)

app = Flask(__name__)


@app.get("/ping")
def ping():
    return jsonify(ok=True)
