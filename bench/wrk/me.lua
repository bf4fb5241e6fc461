-- GET /api/v1/accounts/me with the Bearer token in ACCESS_TOKEN (one session, read only).
require "report"

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ACCESS_TOKEN")

function response(status, headers, body)
  count(status)
end
