"""The suite itself: a configured but unreachable PostgreSQL or Redis fails the run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_suite_with(**environ: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "REDIS_URL")}
    env.update(environ)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/api/test_signup.py::test_signup_with_valid_body_creates_account",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test"}, "TEST_DATABASE_URL"),
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL"),
    ],
    ids=["postgresql", "redis"],
)
def test_suite_with_unreachable_service_fails_instead_of_skipping(environ, message):
    result = _run_suite_with(**environ)

    assert result.returncode != 0
    assert f"{message} is set but" in result.stdout + result.stderr
    assert "1 passed" not in result.stdout
