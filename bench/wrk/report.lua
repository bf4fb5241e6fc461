-- Shared by every scenario script (`require "report"`; wrk runs with bench/wrk as its working
-- directory). It numbers the threads (the global `id`, 0-based, set before init), counts each
-- answer's status per thread (`count(status)` in a script's response()), and at the end writes
-- one line, `BENCH_JSON {...}`, that bench/run.py reads: requests, duration, wrk's socket
-- errors, latency percentiles (microseconds), the statuses, and how many threads stopped early
-- because their pool of tokens ran out (`exhausted`).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

statuses = {}
exhausted = 0

function count(status)
  statuses[status] = (statuses[status] or 0) + 1
end

-- A thread whose pool is empty stops; the request returned alongside is never answered.
function stop_thread()
  exhausted = 1
  wrk.thread:stop()
  return wrk.format("GET", "/healthz")
end

function done(summary, latency, requests)
  local merged, stopped = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + n
    end
    stopped = stopped + (thread:get("exhausted") or 0)
  end
  local parts = {}
  for status, n in pairs(merged) do
    parts[#parts + 1] = string.format('"%d": %d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "max": %.0f, "p50": %.0f, "p90": %.0f, "p99": %.0f}, '
      .. '"statuses": {%s}, "exhausted_threads": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), table.concat(parts, ", "), stopped
  ))
end
