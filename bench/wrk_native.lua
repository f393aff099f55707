-- POST one fixed binary body (a file) with every request, as a driver that
-- sends its INSERT in the body: wrk ... -- BODY_FILE [CONTENT_ENCODING]
-- The body is read once and sent unchanged (every row has the same values);
-- Content-Type is application/octet-stream, Content-Encoding is set when
-- CONTENT_ENCODING is given and not "-". wrk sends a Content-Length (not
-- chunked). The URL (settings, no `query` parameter) is wrk's URL argument.
local fixed = nil

init = function(args)
  local f = assert(io.open(args[1], "rb"))
  local body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/octet-stream"
  local enc = args[2]
  if enc and enc ~= "" and enc ~= "-" then
    wrk.headers["Content-Encoding"] = enc
  end
  wrk.body = body
  fixed = wrk.format()
end

request = function() return fixed end
