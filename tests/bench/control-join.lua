-- wrk script: POST /api/v1/meetings/{id}/join with a different (user token, meeting) pair per
-- request, read from the file named by the first script argument ("token meeting_id" lines).
-- Each wrk thread walks its own stride of the list, so pairs are not repeated across threads.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
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
  return wrk.format("POST", "/api/v1/meetings/" .. p[2] .. "/join",
                    { ["Authorization"] = "Bearer " .. p[1] }, "")
end
