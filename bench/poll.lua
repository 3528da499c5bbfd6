-- wrk script for bench/poll.sh: device-code polls (RFC 8628 §3.4) spread over a pool of codes.
--
--   wrk -t T -c C -d D -s bench/poll.lua URL -- CODES_FILE T CLIENT_ID
--
-- CODES_FILE holds one device_code a line. Thread i of T polls the lines i, i+T, i+2T… in
-- turn, so every code is polled by one thread only and as rarely as the pool allows (once
-- every pool_size / rate seconds); with fewer codes than threads, every thread polls them
-- all. Every request is built up front: request() only picks the next one. response() sorts
-- the answers by their `error` (authorization_pending, slow_down, anything else), and done()
-- prints one line for bench/poll.sh to read:
--   POLL rps=… p50_us=… p99_us=… requests=… pending=… slow_down=… other=… socket_errors=…

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local requests = {}
local cursor = 0
pending, slow_down, other = 0, 0, 0

function init(args)
   local file, nthreads, client_id = args[1], tonumber(args[2]), args[3]
   local codes = {}
   for code in io.lines(file) do
      table.insert(codes, code)
   end
   if #codes == 0 then
      error("no device codes in " .. file)
   end
   local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
   for i, code in ipairs(codes) do
      -- Fewer codes than threads (the one-code run): every thread polls all of them.
      if #codes < nthreads or (i - 1) % nthreads == id then
         local body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
            .. "&client_id=" .. client_id .. "&device_code=" .. code
         table.insert(requests, wrk.format("POST", nil, headers, body))
      end
   end
end

function request()
   cursor = cursor % #requests + 1
   return requests[cursor]
end

function response(status, headers, body)
   if body:find('"authorization_pending"', 1, true) then
      pending = pending + 1
   elseif body:find('"slow_down"', 1, true) then
      slow_down = slow_down + 1
   else
      other = other + 1
   end
end

function done(summary, latency, _)
   local p, s, o = 0, 0, 0
   for _, thread in ipairs(threads) do
      p = p + thread:get("pending")
      s = s + thread:get("slow_down")
      o = o + thread:get("other")
   end
   local e = summary.errors
   io.write(string.format(
      "POLL rps=%.1f p50_us=%d p99_us=%d requests=%d pending=%d slow_down=%d other=%d socket_errors=%d\n",
      summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
      summary.requests, p, s, o, e.connect + e.read + e.write + e.timeout))
end
