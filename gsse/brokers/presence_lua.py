"""The Lua scripts that read presence from Redis (one round trip each).

Keys, for a broker prefix ``<p>`` (see presence_redis.py):

- ``<p>:alive:<process>``: exists while that process lives (a TTL of
  ``presence_ttl`` seconds, refreshed by its heartbeat);
- ``<p>:presence:<channel>``: a hash, member ``<process>:<stream>`` -> the
  stream's presence dict as JSON (named streams only);
- ``<p>:count:<channel>``: a hash, ``<process>`` -> its streams on the channel.

Reading sweeps: an entry whose process has no ``alive`` key any more is
deleted as it is found, so a process that died without saying goodbye
drops out within ``presence_ttl`` of its last heartbeat, and nothing it
left behind outlives the next read. Each process's liveness is looked up
once per call, however many entries it has.
"""

from __future__ import annotations

#: KEYS: presence hash, count hash; ARGV: alive-key prefix.
#: Returns {member, json, member, json, ...} of live processes' streams.
MEMBERS = """
local all = redis.call('HGETALL', KEYS[1])
local alive, out, dead = {}, {}, {}
for i = 1, #all, 2 do
  local member = all[i]
  local proc = string.match(member, '^(.-):') or member
  local ok = alive[proc]
  if ok == nil then
    ok = redis.call('EXISTS', ARGV[1] .. proc) == 1
    alive[proc] = ok
    if not ok then redis.call('HDEL', KEYS[2], proc) end
  end
  if ok then
    out[#out + 1] = member
    out[#out + 1] = all[i + 1]
  else
    dead[#dead + 1] = member
  end
end
for i = 1, #dead, 1000 do
  redis.call('HDEL', KEYS[1], unpack(dead, i, math.min(i + 999, #dead)))
end
return out
"""

#: KEYS: count hash; ARGV: alive-key prefix.
#: Returns {process, count, ...} of live processes with streams on the channel.
COUNTS = """
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  if redis.call('EXISTS', ARGV[1] .. all[i]) == 1 then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
"""
