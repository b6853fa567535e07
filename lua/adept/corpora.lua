-- Corpora built from Debian packages, for recipes that must run on a fresh machine with nothing but the
-- repository: `apt-get download` + `dpkg-deb -x` into a cache directory (nothing installed system-wide),
-- then plain-text extraction. Each function returns paths that adept.dataset reads, and reuses the cache.
local adept = require "adept"

local M = {}

function M.cache_dir() return os.getenv("ADEPT_CACHE") or ".cache/adept" end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function run(cmd, what)
  local ok, _, code = os.execute(cmd)
  if not ok then
    error(("adept.corpora: %s failed (exit %s): %s"):format(what, tostring(code), cmd), 3)
  end
end

-- Extracts a Debian package into <cache>/debian/<name>/ (once) and returns that directory.
function M.debian_package(name, opts)
  opts = opts or {}
  local root = (opts.cache or M.cache_dir()) .. "/debian"
  local dir = root .. "/" .. name
  if exists(dir .. "/.complete") then return dir end
  local work = root .. "/.download-" .. name
  run("rm -rf " .. quote(work) .. " " .. quote(dir) .. " && mkdir -p " .. quote(work), "preparing " .. work)
  adept.log("info", ("fetching Debian package %s into %s"):format(name, dir))
  run("cd " .. quote(work) .. " && apt-get download -q " .. quote(name) .. " >/dev/null 2>&1",
    "apt-get download " .. name .. " (is the machine online, and has `apt-get update` run?)")
  run("for f in " .. quote(work) .. "/*.deb; do dpkg-deb -x \"$f\" " .. quote(dir) .. " || exit 1; done",
    "dpkg-deb -x " .. name)
  run("rm -rf " .. quote(work) .. " && touch " .. quote(dir .. "/.complete"), "finishing " .. dir)
  return dir
end

-- WordNet 3.0 glosses (the text after "| " on each synset line of data.{noun,verb,adj,adv}), one per
-- line: general English. Read it with doc_split = "line".
function M.wordnet_glosses(opts)
  opts = opts or {}
  local out = (opts.cache or M.cache_dir()) .. "/corpora/wordnet_glosses.txt"
  if exists(out) then return out end
  local dir = M.debian_package("wordnet-base", opts)
  run("mkdir -p " .. quote(out:match("^(.*)/")), "creating the corpus directory")
  local tmp = out .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  local n = 0
  for _, part in ipairs{"noun", "verb", "adj", "adv"} do
    for line in io.lines(dir .. "/usr/share/wordnet/data." .. part) do
      local gloss = line:match("^%d+ .-| (.-)%s*$")
      if gloss and gloss ~= "" then
        f:write(gloss, "\n")
        n = n + 1
      end
    end
  end
  f:close()
  assert(os.rename(tmp, out))
  adept.log("info", ("wrote %d WordNet glosses to %s"):format(n, out))
  return out
end

-- The Maxima reference manual as GNU info text (gzip-compressed files, read as they are by
-- adept.dataset): a mathematical domain. Read it with doc_split = "blank_line".
function M.maxima_manual(opts)
  local dir = M.debian_package("maxima-doc", opts)
  return {dir .. "/usr/share/info/maxima.info-1.gz", dir .. "/usr/share/info/maxima.info-2.gz",
          dir .. "/usr/share/info/maxima.info-3.gz"}
end

return M
