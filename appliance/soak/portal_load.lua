-- wrk script for `appliance soak load`: simulated patients browsing the portal.
--
-- Each wrk connection is one simulated patient. Requests rotate through a plan file of
-- "Cookie header<TAB>path" lines (one signed-in session per patient, each patient's pages in
-- the order a patient browses them), starting at a different place per thread.
-- Think time: with LOAD_THINK_MAX_MS > 0 each connection waits a uniform random
-- LOAD_THINK_MIN_MS..LOAD_THINK_MAX_MS after every answer (a patient reading the page);
-- with 0 there is no `delay` at all, which is wrk's closed loop (saturation).
-- Anything but a 200 counts as an error: a 303 to the sign-in page is a lost session.
-- `done` prints one line "LOADJSON {...}" that load.py parses.

local plan_path = os.getenv("LOAD_PLAN")
local think_min = tonumber(os.getenv("LOAD_THINK_MIN_MS") or "0")
local think_max = tonumber(os.getenv("LOAD_THINK_MAX_MS") or "0")

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  table.insert(threads, thread)
end

local plan = {}
local position = 0
bad = 0
statuses = ""

function init(args)
  for line in io.lines(plan_path) do
    local cookie, path = line:match("^([^\t]*)\t(.+)$")
    if path then
      plan[#plan + 1] = wrk.format("GET", path, { Cookie = cookie })
    end
  end
  math.randomseed(os.time() + 7919 * thread_id)
  position = math.random(0, #plan - 1)
end

function request()
  position = position % #plan + 1
  return plan[position]
end

if think_max > 0 then
  function delay()
    return math.random(think_min, think_max)
  end
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if #statuses < 200 then
      statuses = statuses .. tostring(status) .. " "
    end
  end
end

function done(summary, latency, requests)
  local not_ok = 0
  local seen = ""
  for _, thread in ipairs(threads) do
    not_ok = not_ok + thread:get("bad")
    seen = seen .. thread:get("statuses")
  end
  local e = summary.errors
  io.write(string.format(
    'LOADJSON {"requests": %d, "duration_us": %d, "not_ok": %d, "statuses": "%s", '
      .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, '
      .. '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, not_ok, seen, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean
  ))
end
