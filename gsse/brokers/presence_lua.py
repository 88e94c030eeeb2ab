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
