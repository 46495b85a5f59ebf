-- wrk script: GET /api/v1/meetings/{id} (status and roster) as one of its participants, cycling
-- through the "token meeting_id" lines of the file named by the first script argument.
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  pairs_ = {}
  for line in io.lines(args[1]) do
    local tok, mid = line:match("(%S+)%s+(%S+)")
    pairs_[#pairs_ + 1] = { tok, mid }
  end
  nthreads = tonumber(args[2]) or 1
  idx = id + 1
end

function request()
  local p = pairs_[idx]
  idx = idx + nthreads
  if idx > #pairs_ then idx = id + 1 end
  return wrk.format("GET", "/api/v1/meetings/" .. p[2], { ["Authorization"] = "Bearer " .. p[1] }, nil)
end
