"""LOG-02 benchmark: does a login's timing tell whether the account exists?

Interleaves logins with a wrong password for a real account and logins for unknown emails, in
process, with the production Argon2 parameters (argon2-cffi's defaults), and prints the median of
each, their difference, and the bound SECURITY.md sets: max(10 % of one Argon2 verify, 20 ms).
The baseline, one bare Argon2 verify, is measured in the same run.

    make bench            # or: .venv/bin/python bench/login_timing.py [--rounds 200]

It prints figures and exits 1 when the difference is over the bound; it is not part of the suite.
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
WRONG = "not the password at all"


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="logins of each kind")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        app = create_app(
            "testing",
            {
                "DATABASE_URL": f"sqlite:///{workdir}/bench.db",
                # Production's parameters, not the test suite's cheap ones.
                "ARGON2_TIME_COST": 3,
                "ARGON2_MEMORY_COST": 65536,
                "ARGON2_PARALLELISM": 4,
            },
        )
        logging.disable(logging.INFO)  # one log line per failed login is not what is measured
        with app.app_context():
            upgrade()  # the schema and its seeded roles, as in production
        client = app.test_client()
        created = client.post(
            "/api/v1/accounts", json={"email": "ada@example.com", "password": PASSWORD}
        )
        assert created.status_code == 201, created.get_json()

        hasher = app.extensions["gatehouse"].hasher
        stored = hasher.hash(PASSWORD)
        verify = statistics.median(timed(lambda: hasher.verify(stored, WRONG)) for _ in range(20))

        def login(email: str) -> None:
            response = client.post("/api/v1/auth/login", json={"email": email, "password": WRONG})
            assert response.status_code == 401

        known, unknown = [], []
        for index in range(args.rounds):
            # Alternate which goes first, so drift in the machine's speed falls on both.
            pair = [(known, "ada@example.com"), (unknown, f"nobody{index}@example.com")]
            for samples, email in pair if index % 2 else reversed(pair):
                samples.append(timed(lambda email=email: login(email)))

    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    difference = abs(known_median - unknown_median)
    bound = max(0.10 * verify, 0.020)
    rows = [
        ("rounds of each kind", f"{args.rounds}"),
        ("baseline, one Argon2 verify", f"{verify * 1000:8.2f} ms"),
        (
            "wrong password, median",
            f"{known_median * 1000:8.2f} ms ({known_median / verify:.2f}x baseline)",
        ),
        (
            "unknown email, median",
            f"{unknown_median * 1000:8.2f} ms ({unknown_median / verify:.2f}x baseline)",
        ),
        (
            "difference of medians",
            f"{difference * 1000:8.2f} ms ({difference / verify:.1%} of a verify)",
        ),
        ("bound max(10% verify, 20 ms)", f"{bound * 1000:8.2f} ms"),
        ("verdict", "ok" if difference < bound else "OVER the bound"),
    ]
    for label, value in rows:
        print(f"{label + ':':30} {value}")
    return 0 if difference < bound else 1


if __name__ == "__main__":
    sys.exit(main())
