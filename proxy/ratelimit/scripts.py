"""The Lua run inside Redis: Lua copies of `gcra.py` and `lockout.py`, using Redis `TIME` as the clock.

Redis's clock, not the replicas': every replica's decision is made against one clock, so skew
between hosts cannot give a client extra quota. Numbers are Lua doubles; every value stays below
2^52 (config refuses burst × period beyond that), so the integer maths is exact, and
`string.format('%d')` keeps all digits where `tostring` would round them.

OPS is the hot path, evaluated once per event-loop tick for every request waiting in that tick
(redis_store.py coalesces them), each op in turn: op `h` checks and consumes all of one request's
limits atomically (all or nothing), op `r` asks the revocation deny-list. Each key's TTL is the time until its bucket is
full again, so Redis never keeps a dead key.
"""

from __future__ import annotations

import hashlib

# ARGV: one string per op, "<kind> <nkeys> <args...>", so a batch is few RESP elements to pack and
# the answer one string, "<op result>|<op result>|...", to parse: redis-py's pure-Python RESP parser
# costs ~1 µs per element, which per-op arrays of integers would pay several times per request.
OPS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local k = 1
for op = 1, #ARGV do
  local f = {}
  for w in string.gmatch(ARGV[op], '%S+') do f[#f + 1] = w end
  local kind, n = f[1], tonumber(f[2])
  if kind == 'h' then
    local lv, ok = {}, 1
    for i = 0, n - 1 do
      local p, c, b = tonumber(f[3 + 3 * i]), tonumber(f[4 + 3 * i]), tonumber(f[5 + 3 * i])
      local d = 0
      local v = redis.call('GET', KEYS[k + i])
      if v then
        local sp = string.find(v, ' ', 1, true)
        d = (tonumber(string.sub(v, 1, sp - 1)) - now) * c + tonumber(string.sub(v, sp + 1))
        if d < 0 then d = 0 end
      end
      lv[i + 1] = d
      if d + p > b * p then ok = 0 end
    end
    if ok == 1 then
      for i = 0, n - 1 do
        local p, c = tonumber(f[3 + 3 * i]), tonumber(f[4 + 3 * i])
        local nd = lv[i + 1] + p
        local q = math.floor(nd / c)
        redis.call('SET', KEYS[k + i], string.format('%d %d', now + q, nd - q * c), 'PX', math.ceil(nd / c / 1000))
      end
    end
    local res = {ok}
    for i = 1, n do res[i + 1] = string.format('%d', lv[i]) end
    out[op] = table.concat(res, ' ')
  elseif kind == 'r' then
    local iat = tonumber(f[3])
    local hit = 0
    local cut = redis.call('GET', KEYS[k])
    if cut and (iat < 0 or iat < tonumber(cut)) then hit = 1 end
    if hit == 0 and n == 2 and redis.call('EXISTS', KEYS[k + 1]) == 1 then hit = 1 end
    out[op] = tostring(hit)
  end
  k = k + n
end
return table.concat(out, '|')
"""

# KEYS: one record per subject, "failures level locked_until_us".
# ARGV: 'attempt' | 'settle', window_us, lockout_us, max_lockout_us, then per key the maximum
# failures (attempt) or 'r' refund / 'c' clear (settle).
LOGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window, base, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS
local rec = {}
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  local f, l, u = 0, 0, 0
  if v then
    local a, b, c = string.match(v, '^(%d+) (%d+) (%d+)$')
    f, l, u = tonumber(a), tonumber(b), tonumber(c)
  end
  rec[i] = {f, l, u}
end
local function save(i, f, l, u)
  local keep = window
  if u > now then keep = keep + (u - now) end
  redis.call('SET', KEYS[i], string.format('%d %d %d', f, l, u), 'PX', math.ceil(keep / 1000))
end
if ARGV[1] == 'attempt' then
  local out, locked, tripped = {1}, false, false
  for i = 1, n do
    local wait = rec[i][3] - now
    if wait > 0 then locked = true else wait = 0 end
    out[i + 1] = wait
  end
  if locked then
    out[1] = 0
    return out
  end
  for i = 1, n do
    if rec[i][1] + 1 > tonumber(ARGV[4 + i]) then tripped = true end
  end
  for i = 1, n do
    local f, l = rec[i][1], rec[i][2]
    if not tripped then
      save(i, f + 1, l, rec[i][3])
    elseif f + 1 > tonumber(ARGV[4 + i]) then
      local dur = math.min(base * 2 ^ math.min(l, 40), cap)
      save(i, 0, math.min(l + 1, 40), now + dur)
      out[i + 1] = dur
    end
  end
  if tripped then out[1] = 0 end
  return out
end
for i = 1, n do
  local r = rec[i]
  if ARGV[4 + i] == 'c' then
    if r[3] > now then save(i, 0, 0, r[3]) else redis.call('DEL', KEYS[i]) end
  elseif r[1] > 0 then
    redis.call('SET', KEYS[i], string.format('%d %d %d', r[1] - 1, r[2], r[3]), 'KEEPTTL')
  end
end
return {1}
"""

# a subject's revocation cut-off only ever moves later; KEYS[1], ARGV: cut-off (epoch s), keep (ms)
CUTOFF = """
local old = redis.call('GET', KEYS[1])
local cut = ARGV[1]
if old and tonumber(old) > tonumber(cut) then cut = old end
redis.call('SET', KEYS[1], cut, 'PX', ARGV[2])
return 1
"""


class Script:
    """A script and its SHA1, computed here: EVALSHA needs no SCRIPT LOAD until Redis says NOSCRIPT."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


SCRIPTS = {name: Script(src) for name, src in (("ops", OPS), ("login", LOGIN), ("cutoff", CUTOFF))}
