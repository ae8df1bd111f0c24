local f = io.open("one.json", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local nextid = 1
function setup(thread)
  thread:set("seed", nextid)
  nextid = nextid + 1
end
function init(args)
  math.randomseed(7919 * (seed or 0) + os.time())
end
function delay()
  return math.floor(-19 * math.log(1 - math.random()) + 0.5)
end
