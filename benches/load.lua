-- wrk script: posts the corpus messages round-robin, each with a fresh Message-ID
-- so every request is a new filing (not an idempotent re-delivery).
-- usage: wrk -s benches/load.lua URL -- MANIFEST TOKEN
local bodies = {}
local counter = 0
local prefix = ""
local threads = 0

-- Each wrk thread has its own Lua state: give each its own Message-ID prefix
-- (math.random is seeded alike in every thread, so the random part alone made
-- the threads post the same IDs, half the requests being re-deliveries).
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  local manifest, token = args[1], args[2]
  for path in io.lines(manifest) do
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    -- drop any Message-ID header; a fresh one is added per request
    data = data:gsub("\r?\n[Mm][Ee][Ss][Ss][Aa][Gg][Ee]%-[Ii][Dd]:[^\r\n]*", "", 1)
    bodies[#bodies + 1] = data
  end
  wrk.method = "POST"
  wrk.path = "/v1/messages"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "message/rfc822"
  math.randomseed(os.time())
  prefix = tostring(math.random(1, 1e9)) .. "-" .. tostring(tid or 0)
end

function request()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  local id = "Message-ID: <load-" .. prefix .. "-" .. counter .. "@bench.example>\r\n"
  return wrk.format(nil, nil, nil, id .. body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
