-- The framework ceiling: GET /ping of bench/bare_app.py, one small JSON answer.
require "report"

function response(status, headers, body)
  count(status)
end
