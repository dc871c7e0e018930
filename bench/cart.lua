-- wrk's cart-write script, used by make bench (bench/src/main.rs) and make profile
-- (bench/profile/cart-write.sh): cart writes spread over many sessions (cookies from the file in
-- BENCH_COOKIES) and all products (PRODUCTS, set before this script), so no line reaches its
-- quantity limit during a run.
local next_thread = 0
function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end
function init(args)
  cookies = {}
  for line in io.lines(os.getenv("BENCH_COOKIES")) do cookies[#cookies + 1] = line end
  counter = thread_index * 7919
end
function request()
  counter = counter + 1
  local cookie = cookies[(counter % #cookies) + 1]
  local product = (math.floor(counter / #cookies) % PRODUCTS) + 1
  return wrk.format("POST", "/api/cart/add", {
    ["Cookie"] = cookie,
    ["Accept"] = "text/html",
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "product_id=" .. product .. "&quantity=1")
end
