-- GET /api/v1/accounts/me with the Bearer token in ACCESS_TOKEN.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ACCESS_TOKEN")
