"""EM-01 benchmark: does a password-reset request's timing tell whether the account exists?

Interleaves reset requests for a real account and for unknown addresses, in process, and prints
the median of each, their difference, and a baseline measured in the same run: a request that
reads nothing (``GET /healthz``), i.e. what the framework alone costs. A request only folds the
address, takes a mail budget and commits one deferred job to the outbox; the sender (off here)
decides later whether an account has the address, so nothing on the request path depends on it.
The per-account mail budget is lifted so every known request does the full work.

    make bench                       # or: .venv/bin/python bench/reset_timing.py [--rounds 300]
    .venv/bin/python bench/reset_timing.py --database-url postgresql://postgres@127.0.0.1/bench

(give PostgreSQL an empty scratch database: the run migrates it and leaves its rows behind).

Exits 1 when the difference of medians is over max(25 % of the known request's median, 2 ms):
a gap a network observer could not tell from jitter. It is not part of the test suite.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade

from app import create_app

PASSWORD = "correct horse battery staple"


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="requests of each kind")
    parser.add_argument("--database-url", help="default: a scratch SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        app = create_app(
            "testing",
            {
                "DATABASE_URL": args.database_url or f"sqlite:///{workdir}/bench.db",
                "MAIL_RATE_LIMIT_PER_ACCOUNT": "1000000/hour",
                "MAIL_SENDER_ENABLED": False,
            },
        )
        logging.disable(logging.INFO)
        with app.app_context():
            upgrade()
        client = app.test_client()
        created = client.post(
            "/api/v1/accounts", json={"email": "ada@example.com", "password": PASSWORD}
        )
        assert created.status_code == 201, created.get_json()

        def reset(email: str) -> None:
            response = client.post("/api/v1/auth/password-reset", json={"email": email})
            assert response.status_code == 202, response.get_json()

        for _ in range(20):  # warm up: templates compiled, connections open
            reset("ada@example.com")
            reset("warm@example.com")
        baseline = [timed(lambda: client.get("/healthz")) for _ in range(args.rounds)]
        known, unknown = [], []
        for index in range(args.rounds):
            pair = [(known, "ada@example.com"), (unknown, f"nobody{index}@example.com")]
            for samples, email in pair if index % 2 else reversed(pair):
                samples.append(timed(lambda email=email: reset(email)))

    base = statistics.median(baseline)
    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    difference = abs(known_median - unknown_median)
    bound = max(0.25 * known_median, 0.002)
    rows = [
        ("rounds of each kind", f"{args.rounds}"),
        ("baseline, GET /healthz", f"{base * 1000:8.2f} ms"),
        ("known account, median", f"{known_median * 1000:8.2f} ms ({known_median / base:.2f}x)"),
        (
            "unknown address, median",
            f"{unknown_median * 1000:8.2f} ms ({unknown_median / base:.2f}x)",
        ),
        (
            "difference of medians",
            f"{difference * 1000:8.2f} ms ({difference / known_median:.1%} of known)",
        ),
        ("bound max(25% known, 2 ms)", f"{bound * 1000:8.2f} ms"),
        ("verdict", "ok" if difference < bound else "OVER the bound"),
    ]
    for label, value in rows:
        print(f"{label + ':':30} {value}")
    return 0 if difference < bound else 1


if __name__ == "__main__":
    sys.exit(main())
