"""The Lua scripts that read presence from Redis (one round trip each).

Keys, for a broker prefix ``<p>`` (see presence_redis.py):

- ``<p>:alive:<process>``: exists while that process lives (a TTL of
  ``presence_ttl`` seconds, refreshed by its heartbeat);
- ``<p>:count:<channel>``: a hash, ``<process>`` -> its streams on the
  channel (every process with streams there has a field);
- ``<p>:presence:<channel>:<process>``: a hash, ``<stream>`` -> the stream's
  presence dict as JSON (named streams only).

Reading sweeps: a process with no ``alive`` key any more loses its count
field and its presence hash as they are found, so a process that died
without saying goodbye drops out within ``presence_ttl`` of its last
heartbeat, and nothing it left behind outlives the next read. Each
process's liveness is looked up once per call, however many streams it has.
"""

from __future__ import annotations

#: KEYS: count hash; ARGV: alive-key prefix, the channel's presence-key prefix.
#: Returns {process, {stream, json, ...}, ...} for each live process: the
#: work in Lua is per process, never per stream (Redis copies each hash).
MEMBERS = """
local out = {}
for _, proc in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. proc) == 1 then
    out[#out + 1] = proc
    out[#out + 1] = redis.call('HGETALL', ARGV[2] .. proc)
  else
    redis.call('HDEL', KEYS[1], proc)
    redis.call('DEL', ARGV[2] .. proc)
  end
end
return out
"""

#: KEYS: count hash; ARGV: alive-key prefix, the channel's presence-key prefix.
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
    redis.call('DEL', ARGV[2] .. all[i])
  end
end
return out
"""

# -- Redis Cluster -------------------------------------------------------------
# A script may touch only keys of one slot, named in KEYS, so in a Cluster a
# channel's presence lives in three hashes of the channel's slot (hash-tagged
# by KeyNames), and a process's liveness is kept per channel:
#
# - ``<p>:count:{<channel>}``: ``<process>`` -> its streams on the channel;
# - ``<p>:alive:{<channel>}``: ``<process>`` -> when it expires (ms, the
#   shard's clock), pushed ``presence_ttl`` ahead by each heartbeat;
# - ``<p>:members:{<channel>}``: ``<process>:<stream>`` -> the JSON.

#: KEYS: count, alive; ARGV: process, its streams here, ttl (ms), key ttl (s).
#: Writes (or, for 0 streams, removes) the process's count and liveness;
#: returns 1 when the process was live here before, else 0 (new or swept).
BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local before = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[3]))
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
if before >= now then return 1 end
return 0
"""

#: KEYS: count, alive, members; ARGV: '1' to return the members too.
#: Sweeps the processes whose liveness ran out (and their members), then
#: returns {{process, count, ...} of the live ones, members hash or false}.
#: Per-stream work in Lua only while sweeping a dead process (rare).
READ_TAGGED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local live, dead, swept = {}, {}, false
for i = 1, #all, 2 do
  local expiry = tonumber(redis.call('HGET', KEYS[2], all[i]) or '0')
  if expiry >= now then
    live[#live + 1] = all[i]
    live[#live + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[1], all[i])
    redis.call('HDEL', KEYS[2], all[i])
    dead[all[i]] = true
    swept = true
  end
end
if swept then
  for _, field in ipairs(redis.call('HKEYS', KEYS[3])) do
    if dead[string.match(field, '^([^:]*)')] then
      redis.call('HDEL', KEYS[3], field)
    end
  end
end
if ARGV[1] ~= '1' then return {live, false} end
return {live, redis.call('HGETALL', KEYS[3])}
"""
