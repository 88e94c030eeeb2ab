"""The Lua scripts of the Redis broker (run atomically inside Redis).

The only key per channel is ``<prefix>:stream:<channel>``, a Stream holding
the channel's history (entry ids are event ids); only a publish writes it,
so subscribing to a channel nobody publishes to leaves nothing in Redis.

Each entry carries, besides the event (``r``), the id of the entry before
it (``p``; ``0-0`` for a channel's first event). Once ``MAXLEN`` trims the
Stream, its oldest entry's ``p`` is therefore the newest trimmed id: the
*floor*, after which every event is still there. A ``Last-Event-ID`` is
resumable exactly when it lies between the floor and the newest id; for a
Stream never trimmed, when it is one of its ids or ``0-0`` (the position of
a stream that subscribed while the channel was empty). The check and the
replay read are one script, so trimming cannot slip between them.

A publish also keeps a token key for as long as it may be retried, which
makes a retried publish idempotent, and announces the channel's name on the
``notify`` pub/sub channel, which tells readers what to read (see
redis_reader.py).
"""

from __future__ import annotations

#: KEYS: stream, token; ARGV: history, encoded event, token lifetime (s),
#: notify channel, channel name, then optional extra entry fields as name,
#: value pairs (``d``: where to report deliveries, see delivery_redis.py).
#: Returns the new entry's id.
PUBLISH = """
local done = redis.call('GET', KEYS[2])
if done then return done end
local previous = '0-0'
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest > 0 then previous = newest[1][1] end
local fields = {'r', ARGV[2], 'p', previous}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', unpack(fields))
redis.call('SET', KEYS[2], id, 'EX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return id
"""

#: KEYS: stream; ARGV: resume after this id ('' for none). Read-only.
#: Returns {newest id ('0-0' when empty), entries after the id or false}.
STATE = """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local after = ARGV[1]
if #newest == 0 then
  if after == '0-0' then return {'0-0', {}} end
  return {'0-0', false}
end
local last = newest[1][1]
if after == '' then return {last, false} end
local function le(x, y)
  local xa, xb = string.match(x, '^(%d+)-(%d+)$')
  local ya, yb = string.match(y, '^(%d+)-(%d+)$')
  -- Compare as integers of any length (no leading zeros): length, then text.
  if #xa ~= #ya then return #xa < #ya end
  if xa ~= ya then return xa < ya end
  if #xb ~= #yb then return #xb < #yb end
  return xb <= yb
end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local floor = first[1]
local fields = first[2]
for i = 1, #fields, 2 do
  if fields[i] == 'p' then floor = fields[i + 1] end
end
local ok
if floor == '0-0' then ok = after == '0-0' or le(first[1], after)
else ok = le(floor, after) end
if not (ok and le(after, last)) then return {last, false} end
-- Only a position this channel issued resumes (not another channel's id).
if after ~= floor and after ~= last and after ~= '0-0' and
   #redis.call('XRANGE', KEYS[1], after, after) == 0 then
  return {last, false}
end
return {last, redis.call('XRANGE', KEYS[1], '(' .. after, '+')}
"""
