-- wrk script of bench/service/list_pipelines.py: GET the paths of WRK_PATHS (comma-separated)
-- in turn, with "Authorization: Bearer $WRK_TOKEN" when set; at the end one JSON line with
-- the counts, the errors and the latency percentiles in microseconds.
local paths = {}
for p in string.gmatch(os.getenv("WRK_PATHS") or "/", "[^,]+") do
  table.insert(paths, p)
end
local token = os.getenv("WRK_TOKEN")
local n = 0

request = function()
  n = n + 1
  local headers = {}
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  return wrk.format("GET", paths[(n % #paths) + 1], headers)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p95": %d, '
      .. '"p99": %d, "min": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.min, latency.max, latency.mean))
end
