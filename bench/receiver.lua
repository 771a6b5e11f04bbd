-- wrk script for bench/receiver.py: cycles pre-signed HubSpot webhook bodies.
-- args: <requests.tsv> <wrk threads>; each line: signature \t timestamp \t body.
-- Thread k sends lines k, k+n, k+2n, ... once each, then stops; done() prints totals and latency percentiles.
local counter = 1
local threads = {}

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   local file, nthreads = args[1], tonumber(args[2])
   reqs = {}
   local i = 0
   for line in io.lines(file) do
      if i % nthreads == id - 1 then
         local sig, ts, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
         reqs[#reqs + 1] = wrk.format("POST", wrk.path, {
            ["Content-Type"] = "application/json",
            ["X-HubSpot-Signature-v3"] = sig,
            ["X-HubSpot-Request-Timestamp"] = ts,
         }, body)
      end
      i = i + 1
   end
   sent, ok, bad = 0, 0, 0
end

function request()
   sent = sent + 1
   return reqs[((sent - 1) % #reqs) + 1]
end

function response(status, headers, body)
   if status == 200 then ok = ok + 1 else bad = bad + 1 end
   if ok + bad >= #reqs then wrk.thread:stop() end
end

function done(summary, latency, requests)
   local ok_total, bad_total = 0, 0
   for _, t in ipairs(threads) do
      ok_total = ok_total + t:get("ok")
      bad_total = bad_total + t:get("bad")
   end
   io.write(string.format("LUA ok=%d\nLUA bad=%d\n", ok_total, bad_total))
   io.write(string.format("LUA p50=%d\nLUA p99=%d\n", latency:percentile(50), latency:percentile(99)))
end
