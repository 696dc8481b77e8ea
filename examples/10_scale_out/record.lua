-- Numbers a room's change and stores it, atomically (bus.rs runs it).
local seq_key, stream, state, recent = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local change, kind, sensor = ARGV[1], ARGV[2], ARGV[3]
local history, value = ARGV[4], ARGV[5]
local recent_len, default_threshold = ARGV[6], ARGV[7]

local seq = redis.call('INCR', seq_key)
local alert = ''
if kind == 'reading' then
  -- Decided here, in the one order: the same for every instance, and kept in
  -- the entry, so that a history rebuilt later says the same.
  local t = redis.call('HGET', state, 't' .. sensor) or default_threshold
  alert = tostring(tonumber(value) > tonumber(t))
  redis.call('HSET', state, 'v' .. sensor, value)
  redis.call('RPUSH', recent, value)
  redis.call('LTRIM', recent, -recent_len, -1)
else
  redis.call('HSET', state, 't' .. sensor, value)
end
redis.call('XADD', stream, 'MAXLEN', '~', history, '0-' .. seq,
  'change', change, 'alert', alert)
return seq
