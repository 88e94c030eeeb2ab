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
replay read are one script (``STATE_KEYED`` in lua_compact.py, which also
skips superseded events of compacted channels), so trimming cannot slip
between them.

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

# The read script (newest id, replay, snapshot) is STATE_KEYED in lua_compact.py.
