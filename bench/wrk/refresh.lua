-- POST /api/v1/auth/refresh, each request with a refresh token no request in flight holds:
-- a pool of tokens (one per session, read from the file named by TOKENS, one per line) is
-- shared by the thread's connections; a request takes one, its answer puts the new one back.
-- Rotation is honoured and no token is ever presented twice (which would end its session).
local tokens = {}
local threads_started = 0

function setup(thread)
  thread:set("id", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  local path = os.getenv("TOKENS")
  local all = {}
  for line in io.lines(path) do
    all[#all + 1] = line
  end
  local threads = tonumber(os.getenv("THREADS") or "1")
  local index = tonumber(id or 0)
  for i = 1, #all do
    if (i - 1) % threads == index then
      tokens[#tokens + 1] = all[i]
    end
  end
end

function request()
  local token = table.remove(tokens, 1)
  local body = '{"refresh_token": "' .. token .. '"}'
  return wrk.format("POST", "/api/v1/auth/refresh", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  local token = body:match('"refresh_token":%s*"([^"]+)"')
  if token then
    tokens[#tokens + 1] = token
  end
end
