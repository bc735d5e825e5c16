-- wrk script: POST exactly `total` orders to /api/billing, split evenly across wrk threads, then stop.
-- Usage: wrk -t THREADS -c CONNS -d 120s -s post_orders.lua URL -- TOTAL MARKER THREADS
local sent = 0
local limit = 0

function init(args)
  local total = tonumber(args[1])
  local threads = tonumber(args[3])
  limit = math.floor(total / threads)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"user_id": "' .. args[2] .. '", "number_of_items": "2", "total_amount": "19.99"}'
end

function request()
  sent = sent + 1
  if sent > limit then
    wrk.thread:stop()
  end
  return wrk.format()
end
