-- wrk script: POST exactly TOTAL orders to /api/billing, spread over wrk's threads, then stop.
-- Usage: wrk -tT -cC -dLIMITs -s orders.lua URL -- MARKER TOTAL THREADS DONE_FILE [MOVIE_ID]
--   MARKER     user_id of every order (finds this run's rows in billing_db)
--   DONE_FILE  each thread appends one line when all its answers arrived (the benchmark waits for T lines)
--   MOVIE_ID   when given, every order is a purchase of 1 copy of that movie at 1.00 (the saga)
-- When wrk ends it prints "orders sent N answered N accepted N" (accepted = 200, the broker confirmed it).
--
-- Exactly: wrk asks delay() before every request on a connection, so delay() hands out the thread's quota
-- (the count of "sent"); a connection that finds it used up waits an hour, and the thread stops when its last
-- answer arrives. (request() is not counted: wrk calls it again when a write would block, for the same request.)
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local total, count = tonumber(args[2]), tonumber(args[3])
  quota = math.floor(total / count)
  if index < total % count then
    quota = quota + 1
  end
  done_file = args[4]
  reserved, answered, accepted = 0, 0, 0
  local body = '{"user_id": "' .. args[1] .. '", "number_of_items": "2", "total_amount": "19.99"}'
  if args[5] then
    body = '{"user_id": "' .. args[1] .. '", "movie_id": ' .. args[5] .. ', "quantity": 1, "total_amount": "1.00"}'
  end
  wrk.headers["Content-Type"] = "application/json"  -- added to the -H Authorization header of the command line
  order = wrk.format("POST", nil, nil, body)
end

function delay()
  if reserved < quota then
    reserved = reserved + 1
    return 0
  end
  return 3600000
end

function request()
  return order
end

function response(status, headers, body)
  answered = answered + 1
  if status == 200 then
    accepted = accepted + 1
  end
  if answered == quota then
    local file = io.open(done_file, "a")
    file:write(string.format("thread %d answered %d\n", index, answered))
    file:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local totals = {reserved = 0, answered = 0, accepted = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  io.write(string.format("orders sent %d answered %d accepted %d\n", totals.reserved, totals.answered, totals.accepted))
end
