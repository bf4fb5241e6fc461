"""GET /api/v1/accounts/me in process, with REDIS_URL set and unset, on PostgreSQL.

The Groundwork issue asked whether Redis earns its place on the authenticated path: this runs
the same /me request back to back against two apps on one database, one configured with Redis
and one without, alternating rounds so drift in the machine falls on both, and prints requests
per second and the Redis commands each request cost (from Redis's own INFO commandstats).

    .venv/bin/python bench/me_throughput.py [--database URL] [--redis URL] [--requests 1000]

It drops and rebuilds the schema of the database it is given: point it at a scratch one.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from flask_migrate import upgrade
from sqlalchemy import MetaData, create_engine, text

from app import create_app
from config import normalise_database_url

PASSWORD = "correct horse battery staple"


def reset_schema(url: str) -> None:
    engine = create_engine(normalise_database_url(url))
    with engine.begin() as connection:
        metadata = MetaData()
        metadata.reflect(connection)
        metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def redis_calls(client: redis.Redis) -> int:
    return sum(stats["calls"] for stats in client.info("commandstats").values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=1000, help="per round and app")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    reset_schema(args.database)
    migrator = create_app("testing", {"DATABASE_URL": args.database})
    with migrator.app_context():
        upgrade()
    prefix = f"bench:{uuid.uuid4().hex}:"
    apps = {
        "without Redis": create_app("testing", {"DATABASE_URL": args.database}),
        "with Redis": create_app(
            "testing",
            {"DATABASE_URL": args.database, "REDIS_URL": args.redis, "REDIS_KEY_PREFIX": prefix},
        ),
    }
    first, second = apps.values()
    second.extensions["gatehouse"].tokens.keys = first.extensions["gatehouse"].tokens.keys
    client = first.test_client()
    client.post("/api/v1/accounts", json={"email": "ada@example.com", "password": PASSWORD})
    login = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    probe = redis.Redis.from_url(args.redis)

    rates: dict[str, list[float]] = {name: [] for name in apps}
    commands: dict[str, float] = {}
    for round_ in range(args.rounds):
        order = list(apps.items()) if round_ % 2 == 0 else list(reversed(apps.items()))
        for name, app in order:
            test_client = app.test_client()
            for _ in range(50):  # warm the pool and caches
                assert test_client.get("/api/v1/accounts/me", headers=headers).status_code == 200
            before = redis_calls(probe)
            start = time.perf_counter()
            for _ in range(args.requests):
                test_client.get("/api/v1/accounts/me", headers=headers)
            elapsed = time.perf_counter() - start
            # The INFO call that reads the counter counts itself once.
            commands[name] = (redis_calls(probe) - before - 1) / args.requests
            rates[name].append(args.requests / elapsed)

    baseline = statistics.median(rates["without Redis"])
    print(f"GET /api/v1/accounts/me, {args.rounds} rounds of {args.requests}, in process")
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"  {name:14} {median:8.1f} req/s  ({median / baseline:.2f}x)  "
            f"Redis commands per request: {commands[name]:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
