"""The Lua scripts of the Redis broker (run atomically inside Redis).

Keys per channel: ``<prefix>:stream:<channel>``, a Stream holding the
channel's history (entry ids are event ids), and ``<prefix>:floor:<channel>``,
the id after which every event is still in the Stream. A new channel's floor
is one millisecond before the time it was first used, so its first event
(``XADD *``, at that time or later) is after it, and an id from before Redis
lost its data is older than the floor. A publish also keeps a token key for
as long as it may be retried, which makes a retried publish idempotent.
"""

from __future__ import annotations

_ENSURE_FLOOR = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - 1
  redis.call('SET', KEYS[2], string.format('%.0f', ms) .. '-0')
end
"""

#: KEYS: stream, floor, token; ARGV: history, encoded event, token lifetime (s).
PUBLISH = (
    """
local done = redis.call('GET', KEYS[3])
if done then return done end
"""
    + _ENSURE_FLOOR
    + """
local maxlen = tonumber(ARGV[1])
local length = redis.call('XLEN', KEYS[1])
if length >= maxlen then
  local dropped = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', length - maxlen + 1)
  redis.call('SET', KEYS[2], dropped[#dropped][1])
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', maxlen, '*', 'r', ARGV[2])
redis.call('SET', KEYS[3], id, 'EX', ARGV[3])
return id
"""
)

#: KEYS: stream, floor; ARGV: resume after this id ('' for none), max count.
#: Returns {newest id (the floor when empty), entries after the id or false}.
STATE = (
    _ENSURE_FLOOR
    + """
local floor = redis.call('GET', KEYS[2])
local last = floor
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest > 0 then last = newest[1][1] end
if ARGV[1] == '' then return {last, false} end
local function parse(id)
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(a), tonumber(b)
end
local function le(x, y)
  local xa, xb = parse(x)
  local ya, yb = parse(y)
  return xa < ya or (xa == ya and xb <= yb)
end
if not (le(floor, ARGV[1]) and le(ARGV[1], last)) then return {last, false} end
-- Only a position this channel issued resumes (not another channel's id).
if ARGV[1] ~= floor and ARGV[1] ~= last and
   #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then
  return {last, false}
end
return {last, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])}
"""
)
