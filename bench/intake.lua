-- wrk script of bench/bench_intake.py: signed Standard Webhooks, each sent once.
--
--   WRK_IDS_FILE=IDS_FILE wrk -s bench/intake.lua URL -- REQUESTS_FILE THREADS
--
-- REQUESTS_FILE holds one webhook per line: "<webhook-id>\t<timestamp>\t<signature>\t<body>"
-- (signed by the bench: wrk has no HMAC). Thread i of THREADS sends lines i, i+THREADS, ... in
-- order, each once. Every 202's run id is written to IDS_FILE (one a line) so the bench can find
-- each answered run in the database; the summary is printed as one JSON line starting "RESULT".

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local path, count = args[1], tonumber(args[2])
  reqs = {}
  local i = 0
  for line in io.lines(path) do
    if i % count == tid - 1 then
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", nil, {
        ["content-type"] = "application/json",
        ["webhook-id"] = id,
        ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig,
      }, body)
    end
    i = i + 1
  end
  sent = 0
  reused = 0
  ids = {}
  statuses = {}
end

function request()
  sent = sent + 1
  if sent > #reqs then -- ran out: a repeat (answered 200 as a duplicate), counted
    reused = reused + 1
    return reqs[(sent - 1) % #reqs + 1]
  end
  return reqs[sent]
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status == 202 then
    ids[#ids + 1] = body:match('"run_id":"([^"]+)"')
  end
end

function done(summary, latency, requests)
  local merged, reused_all = {}, 0
  local out = io.open(os.getenv("WRK_IDS_FILE") or "/dev/null", "w")
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses")) do
      merged[k] = (merged[k] or 0) + v
    end
    reused_all = reused_all + thread:get("reused")
    local got = thread:get("ids")
    if out ~= nil and got ~= nil then
      for _, id in ipairs(got) do
        out:write(id, "\n")
      end
    end
  end
  if out ~= nil then
    out:close()
  end
  local parts = {}
  for k, v in pairs(merged) do
    parts[#parts + 1] = string.format('"%s": %d', k, v)
  end
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "statuses": {%s}, "reused": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, table.concat(parts, ", "), reused_all,
    errors.connect + errors.read + errors.write + errors.timeout
  ))
end
