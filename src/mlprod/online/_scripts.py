"""The two Lua scripts the online store runs inside Redis: merge partials, look features up.

Why Lua: a tile's min, max, last value and distinct set need read-modify-write, which a
script does atomically in one round trip; and a lookup combines a few hundred tiles into
twenty numbers inside Redis, so the server receives twenty values instead of every tile.
Numbers cross as text: ``%.17g`` and Python's ``repr`` round-trip a double exactly.
"""

from __future__ import annotations

import hashlib

# KEYS[1]: a hash, KEYS[2] (entities only): the namespace's known entities, a sorted set
# of deadlines. ARGV[1]: seconds to live (0: keep), ARGV[2]: now (s), ARGV[3]: the time
# from which this write holds every event of the entity (ms), ARGV[4]: n, then n triples
# (field, op, value), then fields to delete. Ops: c add integers, s add floats, m keep
# the smaller number, x the larger, l the greater text (a padded time first, so the
# latest), d the union of \30-separated texts. A hash that is gone before its deadline
# was evicted: it is marked incomplete before ARGV[3] (field p), never read as zeros.
MERGE = r"""
local key, known = KEYS[1], KEYS[2]
local ttl, now = tonumber(ARGV[1]), tonumber(ARGV[2])
if known and redis.call('EXISTS', key) == 0 then
  local deadline = redis.call('ZSCORE', known, key)
  if deadline and tonumber(deadline) > now and ARGV[3] ~= '' then
    redis.call('HSET', key, 'p', ARGV[3])
  end
end
local n = tonumber(ARGV[4])
for i = 0, n - 1 do
  local field, op, value = ARGV[5 + 3 * i], ARGV[6 + 3 * i], ARGV[7 + 3 * i]
  local cur = redis.call('HGET', key, field)
  local new = false
  if op == 'c' then
    new = string.format('%d', (tonumber(cur) or 0) + tonumber(value))
  elseif op == 's' then
    new = string.format('%.17g', (tonumber(cur) or 0) + tonumber(value))
  elseif op == 'm' then
    if not cur or tonumber(value) < tonumber(cur) then new = value end
  elseif op == 'x' then
    if not cur or tonumber(value) > tonumber(cur) then new = value end
  elseif op == 'l' then
    if not cur or value > cur then new = value end
  elseif op == 'd' then
    local seen, list = {}, {}
    for part in string.gmatch((cur or '') .. '\30' .. value, '[^\30]+') do
      if not seen[part] then seen[part] = true; list[#list + 1] = part end
    end
    table.sort(list)
    new = table.concat(list, '\30')
  else
    return redis.error_reply('unknown merge op ' .. tostring(op))
  end
  if new then redis.call('HSET', key, field, new) end
end
for j = 5 + 3 * n, #ARGV do redis.call('HDEL', key, ARGV[j]) end
redis.call('HDEL', key, 'c')  -- LOOKUP's kept values are stale now
if ttl > 0 then
  redis.call('EXPIRE', key, ttl)
  if known then
    redis.call('ZADD', known, now + ttl, key)
    redis.call('ZREMRANGEBYSCORE', known, '-inf', now - 1)
  end
end
return n
"""

# KEYS[1]: the entity's tiles, KEYS[2..]: each join's latest row. ARGV[1]: the cutoff in
# epoch ms; ARGV[2]: the aggregates, "function,slot,slot2,hop_ms,tiles;..." in plan order.
# Returns {entity known (0/1), one value per aggregate, one row per join, the time before
# which the entity's tiles are incomplete (after an eviction) or false}.
# Cost matters here (Redis runs one script at a time). The values depend on the cutoff
# only through each window's newest tile, so they are kept in the entity's field c under
# that stamp: until a hop passes or MERGE (which drops c) writes, a lookup reads one
# field. Otherwise each slot's run of tiles is named and read once however many features
# share it, every field in one HMGET, each run summed once.
LOOKUP = r"""
local cutoff = tonumber(ARGV[1])
local known = redis.call('EXISTS', KEYS[1])
local out = {known}
local parsed, marks = {}, {}
for spec in string.gmatch(ARGV[2], '[^;]+') do
  local fn, a, b, hop, n = string.match(spec, '^([%a_]+),(%d+),(%d*),(%d+),(%d+)$')
  hop = tonumber(hop); n = tonumber(n)
  parsed[#parsed + 1] = {fn, a, b, hop, n}
  marks[#marks + 1] = math.floor(cutoff / hop)
end
local stamp = table.concat(marks, ',') .. '|'  -- tile numbers < 1e14: exact digits

local function compute()
  local fields, runs, suffixes, specs = {}, {}, {}, {}
  local function run(slot, hop, n)
    local id = slot .. '/' .. hop .. '/' .. n
    local found = runs[id]
    if found then return found end
    local last = math.floor(cutoff / hop)
    local first = #fields + 1
    local suffix = suffixes[hop] or {}  -- ':<tile>' texts, made once per hop: numbers
    suffixes[hop] = suffix              -- to text are the costly part of naming fields
    for k = last - n + 1, last do
      local text = suffix[k]
      if not text then text = ':' .. k; suffix[k] = text end
      fields[#fields + 1] = slot .. text
    end
    found = {first, #fields}
    runs[id] = found
    return found
  end
  for _, p in ipairs(parsed) do
    specs[#specs + 1] = {p[1], run(p[2], p[4], p[5]), p[3] ~= '' and run(p[3], p[4], p[5])}
  end
  local values = {}
  if known == 1 and #fields <= 4000 then
    values = redis.call('HMGET', KEYS[1], unpack(fields))
  elseif known == 1 then  -- unpack has a limit: read very long runs in parts
    for i = 1, #fields, 4000 do
      local part = redis.call('HMGET', KEYS[1], unpack(fields, i, math.min(i + 3999, #fields)))
      for j = 1, #part do values[i + j - 1] = part[j] end
    end
  end
  local totals = {}
  local function total(r)
    local sum = totals[r]
    if sum then return sum end
    sum = 0
    for i = r[1], r[2] do local v = values[i]; if v then sum = sum + tonumber(v) end end
    totals[r] = sum
    return sum
  end
  local results = {}
  for index, spec in ipairs(specs) do
    local fn, r = spec[1], spec[2]
    local result = false
    if fn == 'count' then
      result = string.format('%d', total(r))
    elseif fn == 'sum' then
      result = string.format('%.17g', total(r))
    elseif fn == 'mean' then
      local count = total(spec[3])
      if count > 0 then result = string.format('%.17g', total(r) / count) end
    elseif fn == 'min' or fn == 'max' then
      for i = r[1], r[2] do
        local v = values[i]
        if v then
          local x = tonumber(v)
          if not result or (fn == 'min' and x < result) or (fn == 'max' and x > result) then
            result = x
          end
        end
      end
      if result then result = string.format('%.17g', result) end
    elseif fn == 'last' then
      for i = r[1], r[2] do
        local v = values[i]
        if v and (not result or v > result) then result = v end
      end
    elseif fn == 'distinct_count' then
      local seen, sets, count = {}, {}, 0
      for i = r[1], r[2] do
        local v = values[i]
        if v and not sets[v] then  -- tiles often hold the same set: split each set once
          sets[v] = true
          for part in string.gmatch(v, '[^\30]+') do
            if not seen[part] then seen[part] = true; count = count + 1 end
          end
        end
      end
      result = string.format('%d', count)
    end
    results[index] = result
  end
  return results
end

local results = nil
if known == 1 then
  local kept = redis.call('HGET', KEYS[1], 'c')
  if kept and string.sub(kept, 1, #stamp) == stamp then
    results = {}
    for v in string.gmatch(string.sub(kept, #stamp + 1), '([^\29]*)\29') do
      results[#results + 1] = v ~= '' and v
    end
  end
end
if not results then
  results = compute()
  if known == 1 then  -- values never hold \29 (texts are JSON); a refused write is harmless
    local parts = {}
    for i = 1, #parsed do parts[i] = results[i] or '' end
    redis.pcall('HSET', KEYS[1], 'c', stamp .. table.concat(parts, '\29') .. '\29')
  end
end
for i = 1, #parsed do out[#out + 1] = results[i] end
for j = 2, #KEYS do out[#out + 1] = redis.call('HGET', KEYS[j], 'r') end
out[#out + 1] = redis.call('HGET', KEYS[1], 'p')
return out
"""


def sha1(script: str) -> str:
    """The digest Redis knows a script by (EVALSHA)."""
    return hashlib.sha1(script.encode("utf-8"), usedforsecurity=False).hexdigest()


MERGE_SHA = sha1(MERGE)
LOOKUP_SHA = sha1(LOOKUP)
