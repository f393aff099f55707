-- POST INSERT bodies of JSONEachRow rows: wrk ... -- ROWS [PAD_BYTES [ID_BASE]]
-- ROWS = 1: every request carries one row with a unique id (ID_BASE + 1,
-- + 2, ...; each wrk thread 10^9 further on), so the rows that reach
-- ClickHouse can be counted and checked for duplicates; give every wrk run
-- into one table its own ID_BASE. ROWS > 1: one fixed body of ROWS rows, built
-- once (the already-batched app). The URL (with ?query=INSERT ... FORMAT
-- JSONEachRow and any settings) is wrk's URL argument.
local rows = 1
local pad = ""
local fixed = nil
local next_id = 0
local counter = 1

setup = function(thread)
  thread:set("thread_no", counter)
  counter = counter + 1
end

init = function(args)
  rows = tonumber(args[1] or "1")
  pad = string.rep("x", tonumber(args[2] or "32"))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-ndjson"
  next_id = tonumber(args[3] or "0") + ((thread_no or 1) - 1) * 1000000000
  if rows > 1 then
    local r = {}
    for i = 1, rows do
      r[i] = string.format('{"id":%d,"v":%d,"s":"%s"}\n', next_id + i, i % 97, pad)
    end
    wrk.body = table.concat(r)
    fixed = wrk.format()
  end
end

request = function()
  if fixed then return fixed end
  next_id = next_id + 1
  return wrk.format(nil, nil, nil,
    string.format('{"id":%d,"v":%d,"s":"%s"}\n', next_id, next_id % 97, pad))
end
