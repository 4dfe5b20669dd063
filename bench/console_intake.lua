-- wrk script of bench/bench_console.py: unsigned webhooks (the recipe verifies nothing), each
-- with an event id of its own, so every request records a new run.
--
--   wrk -s bench/console_intake.lua URL -- TAG
--
-- TAG (one per round) keeps the ids of one round apart from the others'. The statuses answered
-- are printed as one line, "STATUSES {...}", at the end.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  tag = args[1] or "x"
  n = 0
  statuses = {}
end

function request()
  n = n + 1
  local body = string.format('{"id":"%s-%d-%d","email":"user%d@example.com","plan":"pro"}',
    tag, tid, n, n)
  return wrk.format("POST", nil, {["content-type"] = "application/json"}, body)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses")) do
      merged[k] = (merged[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(merged) do
    parts[#parts + 1] = string.format('"%s": %d', k, v)
  end
  io.write(string.format('STATUSES {%s}\n', table.concat(parts, ", ")))
  io.write(string.format('SECONDS %f\n', summary.duration / 1e6))
end
