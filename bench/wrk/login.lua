-- POST /api/v1/auth/login with the right password, for an account drawn from a pool of
-- POOL_SIZE verified accounts, login-RUN_ID-<i>@example.com (i from 0), made by bench/run.py.
-- The draw is seeded (SEED and the thread's number), so a run is reproducible.
require "report"

local run_id = os.getenv("RUN_ID")
local pool = tonumber(os.getenv("POOL_SIZE"))
local password = os.getenv("PASSWORD")
local seed = tonumber(os.getenv("SEED") or "1")
local headers = {["Content-Type"] = "application/json"}

function init(args)
  math.randomseed(seed * 1000 + id)
end

function request()
  local email = string.format("login-%s-%d@example.com", run_id, math.random(0, pool - 1))
  local body = '{"email": "' .. email .. '", "password": "' .. password .. '"}'
  return wrk.format("POST", "/api/v1/auth/login", headers, body)
end

function response(status, headers, body)
  count(status)
end
