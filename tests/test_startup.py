"""Creating the app opens no connection: the database and Redis are reached on first use.

So gunicorn can build the app once before forking its workers (preload) without sharing a
socket between them, and a database or Redis that is down at start does not stop the start
(REL-07); readiness is what reports them.
"""

from config import normalise_database_url
from tests.helpers import CountingListener


def test_create_app_opens_no_database_or_redis_connection(make_app):
    database, redis = CountingListener(), CountingListener()
    try:
        url = f"postgresql://postgres@127.0.0.1:{database.port}/gatehouse"
        app = make_app("production", DATABASE_URL=url, REDIS_URL=redis.url)

        assert app.config["SQLALCHEMY_DATABASE_URI"] == normalise_database_url(url)
        assert (database.accepted, redis.accepted) == (0, 0)
    finally:
        database.close()
        redis.close()
