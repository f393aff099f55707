-- HTTP/1.1 pipelining: each connection sends DEPTH requests back to back
-- (wrk ... -- DEPTH, default 16) and waits for all the answers. Takes most
-- of wrk's own per-request cost out of the measurement, so the server, not
-- the load generator, is the bottleneck. Latency is per batch.
local depth = 16
init = function(args)
  depth = tonumber(args[1] or "16")
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, nil) end
  req = table.concat(r)
end
request = function() return req end
