#!lua
-- visrec featurestore: Commit of one Tx, atomically. redis.go documents the key layout;
-- redis_commit.go builds KEYS and ARGV:
--   ARGV[1]  one byte per KEYS entry: 'h' (hash) or 'z' (sorted set), the type it must have.
--   ARGV[2:] runs of ops, op, key index (into KEYS), record count, records:
--     'o' partition, prev, next   SetOffset (prev '-1': no stored offset)
--     's' id, float32 LE blob     SetVector
--     'a' id, float64 LE blob     AddVector
--     'm' id, base, value         MergeVector (float32 LE blobs): a row equal to base
--                                 becomes value, any other gets value - base added
--     'd' id                      DeleteVector
--     'c' id, n                   IncrCounter
--     'l' id                      AppendCatalog
--     'g' table key index         change log of that table: the key is a sorted set of the
--                                 ids of its rows written, each scored with the version of
--                                 its last write; this commit's version is the highest
--                                 score + 1, and it lists every row this commit writes
--   and, for a commit in parts (redis_parts.go), in its stage:
--     'S', 'A', 'M' id, bytes     checks only: the blob length that 's', 'a' or 'm' has in a
--     'D' id                      part, and 'd'
--     'r' id, set                 the commit's parts, written to hash KEYS[k] beforehand,
--                                 must be there; they are kept (PERSIST) and id joins the
--                                 set of pending commits KEYS[set]
--     'V' table, version          the checks of table KEYS[table]'s rows ran ahead, in
--                                 scripts of their own, after its change log KEYS[k] stood
--                                 at version: only the rows logged since are checked again
--   and in each part:
--     'w' field, set, id          guard: apply only if field of hash KEYS[k] (the part) is
--                                 still there (else reply {'done'}); delete it with the writes,
--                                 and id from KEYS[set] with the last part
--   Ops on one key run in call order; ops on different keys commute.
-- Returns {'ok', merged AddVector and MergeVector rows in ARGV order...} (for a row that
-- MergeVector replaced by its value, '': the caller has it), {'fenced', key, partition,
-- stored} or {'done'}. Every check runs before the first write, because Redis does not roll a
-- script back.

local WIDTH = {o = 3, s = 2, a = 2, m = 3, c = 2, l = 1, g = 1, d = 1, r = 2, w = 3, S = 2, A = 2, M = 2, D = 1, V = 2}
local CHUNK = 2048 -- values per struct call: Lua's C stack holds about 8000
local HSET_PAIRS = 500 -- field/value pairs per HSET call, for the same reason
local kinds = ARGV[1]

-- The runs, parsed once: each {op, key index, first record's ARGV index, count}, in ARGV
-- order; rowRuns holds those of the row ops (s, a, m, d and their checks), offRuns and
-- cntRuns the others that the checks need, guard and staged the 'w' and 'r' runs.
local all, rowRuns, offRuns, cntRuns, verRuns, guard, staged = {}, {}, {}, {}, {}, nil, nil
do
  local nargv, i = #ARGV, 2
  local rowOp = {s = true, a = true, m = true, d = true, S = true, A = true, M = true, D = true}
  while i <= nargv do
    local op, k, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local w = WIDTH[op]
    if w == nil or k == nil or n == nil or KEYS[k] == nil then
      error('visrec: malformed ARGV at ' .. i)
    end
    local run = {op, k, i + 3, n}
    all[#all + 1] = run
    if rowOp[op] then rowRuns[#rowRuns + 1] = run
    elseif op == 'o' then offRuns[#offRuns + 1] = run
    elseif op == 'c' then cntRuns[#cntRuns + 1] = run
    elseif op == 'w' then guard = run
    elseif op == 'r' then staged = run
    elseif op == 'V' then verRuns[#verRuns + 1] = run end
    i = i + 3 + w * n
  end
end

-- A part of a staged commit that another caller applied already changes nothing.
if guard and redis.call('HEXISTS', KEYS[guard[2]], ARGV[guard[3]]) == 0 then
  return {'done'}
end

-- 1. Key types: a write to a key of the wrong type would fail halfway.
for i = 1, #KEYS do
  local want = ({h = 'hash', z = 'zset', s = 'set'})[string.sub(kinds, i, i)]
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('visrec: key ' .. KEYS[i] .. ' holds a ' .. t .. ', want a ' .. want)
  end
end

-- 2. Fencing: each SetOffset's prev must be the stored offset (or the one an earlier
-- SetOffset of this Tx set).
local offs = {}
for _, run in ipairs(offRuns) do
  local k, j, n = run[2], run[3], run[4]
  local cur = offs[k] or {}
  offs[k] = cur
  for r = 0, n - 1 do
    local p, prev, nxt = ARGV[j + 3 * r], ARGV[j + 3 * r + 1], ARGV[j + 3 * r + 2]
    local c = cur[p]
    if c == nil then c = redis.call('HGET', KEYS[k], p) or '-1' end
    if c ~= prev then return {'fenced', KEYS[k], p, c} end
    cur[p] = nxt
  end
end

-- The parts of a commit in parts must be there: they may have expired.
if staged and redis.call('EXISTS', KEYS[staged[2]]) == 0 then
  return redis.error_reply('visrec: the parts of commit ' .. ARGV[staged[3]] .. ' are missing from ' .. KEYS[staged[2]])
end

-- 3. Row lengths: blobs whole, every delta as long as the row it lands on. The stored rows
-- that deltas land on are read first, once, into orig, with one HMGET per HSET_PAIRS rows.
-- The checks ('S', 'A', 'M', 'D') of a row that a 'V' run says was checked ahead, and that
-- no commit wrote since (its change log lists every row write with its version), stand.
local since = {} -- since[table key index][id]: true if logged after the checks ahead
for _, run in ipairs(verRuns) do
  local k, j, n = run[2], run[3], run[4]
  for r = 0, n - 1 do
    local set = {}
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[k], '(' .. ARGV[j + 2 * r + 1], '+inf')) do
      set[id] = true
    end
    since[tonumber(ARGV[j + 2 * r])] = set
  end
end
local CHECK = {S = true, A = true, M = true, D = true}
local function stands(op, k, id)
  return CHECK[op] and since[k] ~= nil and not since[k][id]
end
local orig = {} -- orig[k][id]: stored blob, or false if missing
for _, run in ipairs(rowRuns) do
  local op, k, j, n = run[1], run[2], run[3], run[4]
  if op == 'a' or op == 'm' or op == 'A' or op == 'M' then
    local o = orig[k] or {}
    orig[k] = o
    local w, ids = WIDTH[op], {}
    for r = 0, n - 1 do
      local id = ARGV[j + w * r]
      if o[id] == nil and not stands(op, k, id) then
        o[id] = false
        ids[#ids + 1] = id
      end
    end
    for s = 1, #ids, HSET_PAIRS do
      local e = math.min(s + HSET_PAIRS - 1, #ids)
      local got = redis.call('HMGET', KEYS[k], unpack(ids, s, e))
      for q = s, e do o[ids[q]] = got[q - s + 1] end
    end
  end
end
local lengths = {} -- lengths[k][id]: byte length of a row after the ops so far; -1: missing
for _, run in ipairs(rowRuns) do
  local op, k, j, n = run[1], run[2], run[3], run[4]
  local key = KEYS[k]
  local lens = lengths[k] or {}
  lengths[k] = lens
  local o = orig[k] or {}
  local w = WIDTH[op]
  local check = CHECK[op] -- records carry lengths, not blobs
  local lop = string.lower(op)
  for r = 0, n - 1 do
    local id = ARGV[j + w * r]
    if not stands(op, k, id) then -- else checked ahead, and untouched since
      local size = 0 -- the blob's length in bytes
      if lop ~= 'd' then
        if check then size = tonumber(ARGV[j + w * r + 1]) or -1 else size = #ARGV[j + w * r + 1] end
      end
      if lop == 'd' then
        lens[id] = -1
      elseif lop == 's' then
        if size < 0 or size % 4 ~= 0 then
          return redis.error_reply('visrec: SetVector ' .. key .. ' ' .. id .. ': blob of ' .. size .. ' bytes')
        end
        lens[id] = size
      else
        local vals = 0
        if lop == 'm' then
          local vsize = check and size or #ARGV[j + w * r + 2]
          if size < 0 or size % 4 ~= 0 or vsize ~= size then
            return redis.error_reply('visrec: MergeVector ' .. key .. ' ' .. id .. ': base of ' .. size ..
              ' bytes, value of ' .. vsize)
          end
          vals = size / 4
        else
          if size < 0 or size % 8 ~= 0 then
            return redis.error_reply('visrec: AddVector ' .. key .. ' ' .. id .. ': delta blob of ' .. size .. ' bytes')
          end
          vals = size / 8
        end
        local cur = lens[id]
        if cur == nil then
          local old = o[id]
          cur = old and #old or -1
        end
        if cur >= 0 and cur % 4 ~= 0 then
          return redis.error_reply('visrec: ' .. (lop == 'a' and 'AddVector ' or 'MergeVector ') .. key .. ' ' .. id ..
            ': stored row is corrupt (' .. cur .. ' bytes)')
        end
        if cur >= 0 and cur / 4 ~= vals then
          return redis.error_reply('visrec: ' .. (lop == 'a' and 'AddVector ' or 'MergeVector ') .. key .. ' ' .. id ..
            ': delta has ' .. vals .. ' values, row has ' .. (cur / 4))
        end
        lens[id] = 4 * vals
      end
    end
  end
end

-- 4. Counters go first among the writes: HINCRBY can still fail (overflow, a non-integer
-- field), and then the increments made so far are undone exactly. Counter keys hold nothing
-- else, so applying them before the other ops changes no outcome.
local undo = {}
for _, run in ipairs(cntRuns) do
  local k, j, n = run[2], run[3], run[4]
  for r = 0, n - 1 do
    local id, by = ARGV[j + 2 * r], ARGV[j + 2 * r + 1]
    local old = redis.call('HGET', KEYS[k], id)
    local res = redis.pcall('HINCRBY', KEYS[k], id, by)
    if type(res) == 'table' and res.err then
      for u = #undo, 1, -1 do
        local e = undo[u]
        if e[3] then redis.call('HSET', e[1], e[2], e[3]) else redis.call('HDEL', e[1], e[2]) end
      end
      return redis.error_reply('visrec: IncrCounter ' .. KEYS[k] .. ' ' .. id .. ' by ' .. by .. ': ' .. res.err)
    end
    undo[#undo + 1] = {KEYS[k], id, old}
  end
end

-- 5. The other writes.
local fmts = {}
local function fmt(c, n)
  local key = c .. n
  local f = fmts[key]
  if f == nil then
    f = '<' .. string.rep(c, n)
    fmts[key] = f
  end
  return f
end

-- values returns a table whose entries 1..n are the n values of blob (format char c).
local function values(c, blob, n)
  if n <= CHUNK then return {struct.unpack(fmt(c, n), blob)} end -- entry n+1: next position
  local out, pos = {}, 1
  for s = 1, n, CHUNK do
    local m = math.min(CHUNK, n - s + 1)
    local vals = {struct.unpack(fmt(c, m), blob, pos)}
    for q = 1, m do out[s + q - 1] = vals[q] end
    pos = vals[m + 1]
  end
  return out
end

-- f32blob packs entries 1..n of v as a float32 blob.
local function f32blob(v, n)
  if n <= CHUNK then return struct.pack(fmt('f', n), unpack(v, 1, n)) end
  local parts = {}
  for s = 1, n, CHUNK do
    local e = math.min(s + CHUNK - 1, n)
    parts[#parts + 1] = struct.pack(fmt('f', e - s + 1), unpack(v, s, e))
  end
  return table.concat(parts)
end

-- hset writes the field/value pairs in kv, HSET_PAIRS per call; a later pair of a field wins.
local function hset(key, kv)
  for s = 1, #kv, 2 * HSET_PAIRS do
    redis.call('HSET', key, unpack(kv, s, math.min(s + 2 * HSET_PAIRS - 1, #kv)))
  end
end

local merged = {'ok'}
local now = {} -- now[k][id]: a row's blob after this Tx's writes so far
local written = {} -- written[k]: ids of the rows of KEYS[k] this Tx writes, for the change log
local tops = {} -- highest catalog score per key
local logs = {} -- the 'g' runs, written last
for _, run in ipairs(all) do
  local op, k, j, n = run[1], run[2], run[3], run[4]
  local key = KEYS[k]
  if op == 's' or op == 'a' or op == 'm' then
    local cur = now[k] or {}
    now[k] = cur
    local wr = written[k] or {}
    written[k] = wr
    local o = orig[k]
    local kv = {}
    local w = WIDTH[op]
    for r = 0, n - 1 do
      local id, blob = ARGV[j + w * r], ARGV[j + w * r + 1]
      if op == 'm' then
        local value = ARGV[j + w * r + 2]
        local old = cur[id]
        if old == nil then old = o[id] end
        if old == blob then -- Lua compares strings by content (interned): the cheap case
          merged[#merged + 1] = ''
        else
          local m = #blob / 4
          local base, sum = values('f', blob, m), values('f', value, m)
          local stored = old and values('f', old, m)
          for q = 1, m do sum[q] = (stored and stored[q] or 0) + (sum[q] - base[q]) end
          value = f32blob(sum, m)
          merged[#merged + 1] = value
        end
        blob = value
      elseif op == 'a' then
        local m = #blob / 8
        local sum = values('d', blob, m)
        local old = cur[id] -- false: deleted by this Tx
        if old == nil then old = o[id] end
        if old then
          local base = values('f', old, m)
          for q = 1, m do sum[q] = base[q] + sum[q] end
        end
        blob = f32blob(sum, m)
        merged[#merged + 1] = blob
      end
      cur[id] = blob
      wr[#wr + 1] = id
      kv[#kv + 1] = id
      kv[#kv + 1] = blob
    end
    hset(key, kv)
  elseif op == 'd' then
    local cur = now[k] or {}
    now[k] = cur
    local wr = written[k] or {}
    written[k] = wr
    for s = 0, n - 1, HSET_PAIRS do
      redis.call('HDEL', key, unpack(ARGV, j + s, j + math.min(s + HSET_PAIRS, n) - 1))
    end
    for r = 0, n - 1 do
      cur[ARGV[j + r]] = false
      wr[#wr + 1] = ARGV[j + r]
    end
  elseif op == 'l' then
    local top = tops[k]
    if top == nil then
      local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
      top = last[2] and tonumber(last[2]) or -1
    end
    for r = 0, n - 1 do
      if redis.call('ZADD', key, 'NX', top + 1, ARGV[j + r]) == 1 then top = top + 1 end
    end
    tops[k] = top
  elseif op == 'g' then
    logs[#logs + 1] = run
  elseif op == 'o' then
    local kv = {}
    for r = 0, n - 1 do
      kv[#kv + 1] = ARGV[j + 3 * r]
      kv[#kv + 1] = ARGV[j + 3 * r + 2]
    end
    hset(key, kv)
  elseif op == 'r' then
    redis.call('PERSIST', key)
    redis.call('SADD', KEYS[tonumber(ARGV[j + 1])], ARGV[j])
  end
end
if guard then
  local key, j = KEYS[guard[2]], guard[3]
  redis.call('HDEL', key, ARGV[j])
  if redis.call('EXISTS', key) == 0 then redis.call('SREM', KEYS[tonumber(ARGV[j + 1])], ARGV[j + 2]) end
end

-- The change logs, after every row write.
for _, run in ipairs(logs) do
  local key, j, n = KEYS[run[2]], run[3], run[4]
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local v = (last[2] and tonumber(last[2]) or 0) + 1
  for r = 0, n - 1 do
    local ids = written[tonumber(ARGV[j + r])] or {}
    local zs = {}
    for q = 1, #ids do
      zs[#zs + 1] = v
      zs[#zs + 1] = ids[q]
      if #zs >= 2 * HSET_PAIRS then
        redis.call('ZADD', key, unpack(zs))
        zs = {}
      end
    end
    if #zs > 0 then redis.call('ZADD', key, unpack(zs)) end
  end
end
return merged
