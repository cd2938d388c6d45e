-- wrk script for bench/pool.py: every request is POST /double with {"x": 2}.
-- The path comes from the URL given to wrk; only method, body and headers are set here.
wrk.method = "POST"
wrk.body = '{"x": 2}'
wrk.headers["Content-Type"] = "application/json"
