-- wrk script: POST orders to /api/billing until the benchmark stops wrk (SIGINT), counting the 200 answers.
-- Usage: wrk -t THREADS -c CONNS -d 120s -s post_orders.lua URL -- MARKER
-- At the end it prints "accepted N": the orders the gateway confirmed, which must all become rows.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  accepted = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"user_id": "' .. args[1] .. '", "number_of_items": "2", "total_amount": "19.99"}'
end

function response(status, headers, body)
  if status == 200 then
    accepted = accepted + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("accepted")
  end
  io.write(string.format("accepted %d\n", total))
end
