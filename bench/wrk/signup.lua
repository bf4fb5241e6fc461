-- POST /api/v1/accounts, every request a new address: signup-RUN_ID-<thread>-<n>@example.com.
-- The addresses follow from RUN_ID alone, so a run is reproducible and never repeats one.
require "report"

local run_id = os.getenv("RUN_ID")
local password = os.getenv("PASSWORD")
local headers = {["Content-Type"] = "application/json"}
local sent = 0

function request()
  sent = sent + 1
  local email = string.format("signup-%s-%d-%d@example.com", run_id, id, sent)
  local body = '{"email": "' .. email .. '", "password": "' .. password .. '"}'
  return wrk.format("POST", "/api/v1/accounts", headers, body)
end

function response(status, headers, body)
  count(status)
end
