-- POST /api/v1/auth/refresh, rotation honoured: each session's refresh tokens are presented in
-- the order they were issued, each exactly once. The sessions (one refresh token per line in
-- the file TOKENS) are dealt out to the THREADS threads; a request takes a token no request in
-- flight holds (the one most recently returned, so a connection mostly carries on its own
-- chain), and its answer puts the new token back. A failed refresh loses its session; a thread
-- left without one stops (counted as exhausted by report.lua).
require "report"

local tokens = {}
local headers = {["Content-Type"] = "application/json"}

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
  local body = '{"refresh_token": "' .. token .. '"}'
  return wrk.format("POST", "/api/v1/auth/refresh", headers, body)
end

function response(status, headers, body)
  count(status)
  local token = body:match('"refresh_token":%s*"([^"]+)"')
  if token then
    tokens[#tokens + 1] = token
  end
end
