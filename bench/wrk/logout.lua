-- POST /api/v1/auth/logout, every request ending a session of its own: the access tokens of
-- pre-created sessions (one per line in the file TOKENS) are dealt out to the THREADS threads,
-- and each is sent once. A thread whose tokens run out stops (counted as exhausted).
require "report"

local tokens = {}

function init(args)
  local threads = tonumber(os.getenv("THREADS"))
  local index = 0
  for line in io.lines(os.getenv("TOKENS")) do
    if index % threads == id then
      tokens[#tokens + 1] = line
    end
    index = index + 1
  end
end

function request()
  local token = table.remove(tokens)
  if token == nil then
    return stop_thread()
  end
  return wrk.format("POST", "/api/v1/auth/logout", {["Authorization"] = "Bearer " .. token})
end

function response(status, headers, body)
  count(status)
end
