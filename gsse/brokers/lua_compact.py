"""The Lua scripts of compacted channels and history by age (Redis).

Besides its Stream (lua.py), a channel published to with ``key=`` has:

- ``<prefix>:keys:<channel>``, a hash: key -> ``"<newest id> <event>"``,
  the compacted state, which any process serves snapshots from;
- ``<prefix>:keyage:<channel>``, a sorted set: key -> its newest id's
  milliseconds, so ``history_ttl`` expires old keys without a scan.

On a Redis Cluster both names carry the channel as their hash tag
(:class:`~gsse.brokers.redis_topology.KeyNames`), like its Stream, so
every script here touches one slot.

A keyed entry of the Stream carries its key (field ``k``). Superseded
entries stay in the Stream until ``MAXLEN`` or ``history_ttl`` trims them,
but replay skips them: an entry is live when the hash names its id.

``history_ttl`` (ARGV ttl, in ms; ``0``: none): a publish trims the Stream
with ``XTRIM MINID`` (the oldest remaining entry's ``p`` is then the newest
trimmed id, the floor, exactly as with ``MAXLEN``), drops expired keys and
lets the channel's keys expire after ``ttl`` without publishes. A read
checks the age again against Redis's clock (``TIME``), since nobody may
have published since: an entry older than ``ttl`` moves the floor.
"""

from __future__ import annotations

#: KEYS: stream, token, keys hash, key ages; ARGV: history, encoded event,
#: token lifetime (s), notify channel, channel name, key ('' for none),
#: history_ttl in ms ('0' for none), then optional extra entry fields as
#: lua.py's PUBLISH takes them (``d``: the delivery report). All KEYS are
#: one channel's (one hash slot on a Cluster). Returns the new entry's id.
PUBLISH_KEYED = """
local done = redis.call('GET', KEYS[2])
if done then return done end
local previous = '0-0'
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest > 0 then previous = newest[1][1] end
local key = ARGV[6]
local fields = {'r', ARGV[2], 'p', previous}
if key ~= '' then
  fields[#fields + 1] = 'k'
  fields[#fields + 1] = key
end
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', unpack(fields))
if key ~= '' then
  redis.call('HSET', KEYS[3], key, id .. ' ' .. ARGV[2])
  redis.call('ZADD', KEYS[4], string.match(id, '^(%d+)'), key)
end
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  local cutoff = string.format('%.0f', tonumber(string.match(id, '^(%d+)')) - ttl)
  redis.call('XTRIM', KEYS[1], 'MINID', cutoff)
  local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. cutoff)
  for i = 1, #old do redis.call('HDEL', KEYS[3], old[i]) end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. cutoff)
  for i = 1, 4 do
    if i ~= 2 then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
redis.call('SET', KEYS[2], id, 'EX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return id
"""

#: KEYS: stream, keys hash; ARGV: resume after this id ('' for none),
#: snapshot ('1' or ''), history_ttl in ms ('0' for none). Read-only.
#: Returns {newest id ('0-0' when empty), live entries after the id or
#: false, snapshot as a flat list (key, "id event", ...) or false}.
STATE_KEYED = """
local after = ARGV[1]
local ttl = tonumber(ARGV[3])
local cutoff = nil
if ttl > 0 then
  local now = redis.call('TIME')
  cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ttl
end
local function ms(id) return tonumber(string.match(id, '^(%d+)')) end
local snapshot = false
if ARGV[2] == '1' then
  snapshot = {}
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    if cutoff == nil or ms(all[i + 1]) >= cutoff then
      snapshot[#snapshot + 1] = all[i]
      snapshot[#snapshot + 1] = all[i + 1]
    end
  end
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 then
  if after == '0-0' then return {'0-0', {}, snapshot} end
  return {'0-0', false, snapshot}
end
local last = newest[1][1]
if after == '' then return {last, false, snapshot} end
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
if cutoff ~= nil then
  -- Entries older than the ttl that no publish trimmed yet: gone all the same.
  local expired = redis.call('XREVRANGE', KEYS[1],
                             '(' .. string.format('%.0f', cutoff) .. '-0', '-',
                             'COUNT', 1)
  if #expired > 0 then floor = expired[1][1] end
end
local ok
if floor == '0-0' then ok = after == '0-0' or le(first[1], after)
else ok = le(floor, after) end
if not (ok and le(after, last)) then return {last, false, snapshot} end
-- Only a position this channel issued resumes (not another channel's id).
if after ~= floor and after ~= last and after ~= '0-0' and
   #redis.call('XRANGE', KEYS[1], after, after) == 0 then
  return {last, false, snapshot}
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. after, '+')
local live = {}
for i = 1, #entries do
  local entry = entries[i]
  local keep = true
  local f = entry[2]
  for j = 1, #f, 2 do
    if f[j] == 'k' then
      local held = redis.call('HGET', KEYS[2], f[j + 1])
      keep = held and string.sub(held, 1, #entry[1] + 1) == entry[1] .. ' '
    end
  end
  if keep then live[#live + 1] = entry end
end
return {last, live, snapshot}
"""
