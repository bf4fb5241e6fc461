"""The parsing and arithmetic of bench/run.py (`make bench`); the benchmark itself is no test."""

from __future__ import annotations

import json

import pytest

from bench.run import (
    Row,
    WrkResult,
    format_table,
    parse_args,
    parse_cpu_line,
    parse_wrk_output,
)

REPORT = {
    "requests": 1010,
    "duration_us": 2_000_000,
    "bytes": 123456,
    "errors": {"connect": 1, "read": 2, "write": 0, "status": 10, "timeout": 3},
    "latency_us": {"mean": 9000.5, "max": 80000, "p50": 7000, "p90": 15000, "p99": 42000},
    "statuses": {"200": 1000, "503": 6, "401": 4},
    "exhausted_threads": 1,
}


def wrk_stdout(report: dict) -> str:
    return (
        "Running 2s test @ http://127.0.0.1:8000/\n  2 threads and 16 connections\n"
        f"BENCH_JSON {json.dumps(report)}\nRequests/sec: 505.00\n"
    )


def test_report_line_becomes_rates_latencies_and_errors() -> None:
    result = parse_wrk_output(wrk_stdout(REPORT))
    assert result.requests == 1010
    assert result.seconds == 2.0
    assert result.rate == 500.0  # 2xx answers only, over the run's duration
    assert (result.p50_ms, result.p90_ms, result.p99_ms, result.max_ms) == (7, 15, 42, 80)
    assert result.statuses == {200: 1000, 503: 6, 401: 4}
    # wrk's "status" errors are the >= 400 answers already counted in the statuses.
    assert result.socket_errors == 6
    assert result.errors() == 16
    assert result.errors(allowed=(503,)) == 10
    assert result.exhausted_threads == 1


def test_an_answer_that_is_not_2xx_is_an_error_even_below_400() -> None:
    result = parse_wrk_output(wrk_stdout({**REPORT, "statuses": {"200": 5, "302": 2}}))
    assert result.errors() == 2 + 6


def test_wrk_output_without_the_report_line_is_refused() -> None:
    with pytest.raises(ValueError, match="BENCH_JSON"):
        parse_wrk_output("unable to connect to 127.0.0.1:8000 Connection refused\n")


def test_idle_counts_idle_and_iowait_of_the_first_eight_fields() -> None:
    # user nice system idle iowait irq softirq steal
    assert parse_cpu_line([100, 0, 50, 800, 50, 0, 0, 0]) == (850, 1000)


def test_row_ratio_and_targets() -> None:
    result = WrkResult(
        requests=700,
        seconds=1.0,
        statuses={200: 700},
        socket_errors=0,
        p50_ms=5.0,
        p90_ms=9.0,
        p99_ms=60.0,
        max_ms=70.0,
        exhausted_threads=0,
    )
    row = Row("me", "GET /accounts/me", result.rate, 97.0, wrk=result, ratio_to="bare_flask")
    row.ratio, row.target, row.p99_target_ms = 0.7, 0.70, 50.0
    assert row.ratio_met() is True
    assert row.p99_met() is False
    data = row.as_json()
    assert data["ratio"] == 0.7
    assert data["target_ratio_met"] is True
    assert data["target_p99_met"] is False
    table = format_table([row])
    assert "GET /accounts/me" in table
    assert ">=0.70 ok" in table
    assert "p99 MISS" in table


def test_quick_is_two_seconds_and_scenarios_are_checked() -> None:
    args = parse_args(["--quick", "--scenarios", "me, login"])
    assert args.seconds == 2
    assert args.scenarios == ["me", "login"]
    with pytest.raises(SystemExit):
        parse_args(["--scenarios", "me,nope"])
