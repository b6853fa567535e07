-- adept.options: a recipe's declared options. Each option has a name, a type, a default, a range or a list of
-- choices and one line of help; the command line's key=value words (adept.args) are checked against them before
-- any work starts, and `adeptlua recipe.lua --help` prints them. Also the key check every option table of the
-- library uses (check_keys), so a misspelt key is an error with a suggestion everywhere.
--
-- Choices: an unknown key is an error naming the closest declared name (edit distance, adept.suggest); a value
-- from the command line is converted to the declared type where that is lossless (an integer-valued float for
-- "integer", a number for "string"), anything else is an error naming the option, the value and the type.
-- Types: "string", "integer", "number", "boolean", "list" (a table, or a comma-separated string of numbers or
-- names), "function", "table", or an array of these ({"string", "function"}: a name or a Lua function).
local adept = require "adept"

local M = {}

local TYPES = {string = true, integer = true, number = true, boolean = true, list = true, ["function"] = true,
               table = true}
local DECL_KEYS = {"name", "type", "default", "choices", "min", "max", "help", "required"}

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  return ks
end

-- Raises "<fname>: unknown option 'setps' — did you mean 'steps'? (options: ...)" for a key of `tbl` outside
-- `known` (an array of names, or a set {name = true}). `level` is the error level (default: the caller's caller).
function M.check_keys(tbl, known, fname, level)
  if type(tbl) ~= "table" then return tbl end
  local names, set = {}, {}
  if known[1] ~= nil then
    for _, k in ipairs(known) do names[#names + 1], set[k] = k, true end
  else
    names = sorted_keys(known)
    for _, k in ipairs(names) do set[k] = true end
  end
  for k in pairs(tbl) do
    if type(k) ~= "string" then
      error(("%s: option keys must be names, got a %s key"):format(fname, type(k)), (level or 2) + 1)
    end
    if not set[k] then
      local hint = adept.suggest(k, names)
      error(("%s: unknown option '%s'%s (options: %s)"):format(fname, k,
        hint and (" — did you mean '%s'?"):format(hint) or "", table.concat(names, ", ")), (level or 2) + 1)
    end
  end
  return tbl
end

local function type_list(t) return type(t) == "table" and t or {t} end
local function type_name(t) return table.concat(type_list(t), " or ") end

-- Declarations checked once: every option has a name and a known type, defaults obey their own rules.
local function check_decls(decls, fname)
  if type(decls) ~= "table" then error(fname .. ": expects an array of option declarations", 3) end
  local by_name, order = {}, {}
  for i, d in ipairs(decls) do
    if type(d) ~= "table" or type(d.name) ~= "string" or not d.name:match("^[%a_][%w_]*$") then
      error(("%s: declaration %d needs name= (a Lua name)"):format(fname, i), 3)
    end
    M.check_keys(d, DECL_KEYS, ("%s: option '%s'"):format(fname, d.name), 3)
    if by_name[d.name] then error(("%s: option '%s' is declared twice"):format(fname, d.name), 3) end
    for _, t in ipairs(type_list(d.type or "string")) do
      if not TYPES[t] then
        error(("%s: option '%s' has unknown type '%s' (types: string, integer, number, boolean, list, function, table)")
          :format(fname, d.name, tostring(t)), 3)
      end
    end
    by_name[d.name] = d
    order[#order + 1] = d.name
  end
  return by_name, order
end

local function split_list(s)
  local out = {}
  for item in s:gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    out[#out + 1] = math.tointeger(tonumber(item)) or tonumber(item) or item
  end
  return out
end

-- The value converted to one of the declared types, or nil and the reason.
local function convert(v, types)
  local tl = type_list(types)
  if type(v) == "string" and v:match("^[%d%s,]+$") and v:find(",") then -- "2,4": a list where one is allowed
    for _, t in ipairs(tl) do if t == "list" then return split_list(v) end end
  end
  for _, t in ipairs(tl) do
    if t == "string" and (type(v) == "string" or type(v) == "number") then return tostring(v) end
    if t == "integer" and math.tointeger(v) then return math.tointeger(v) end
    if t == "number" and type(v) == "number" then return v end
    if t == "boolean" and type(v) == "boolean" then return v end
    if t == "list" and type(v) == "table" then return v end
    if t == "list" and type(v) == "string" then return split_list(v) end
    if t == "list" and math.type(v) == "integer" then return {v} end
    if t == "function" and type(v) == "function" then return v end
    if t == "table" and type(v) == "table" then return v end
  end
  return nil
end

local function show(v)
  if type(v) == "string" then return ("'%s'"):format(v) end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return tostring(v)
end

-- Checks one value against its declaration; returns the converted value or raises naming the option.
local function check_value(d, v, fname, where)
  local c = convert(v, d.type or "string")
  if c == nil then
    error(("%s: option '%s'%s must be %s, got %s (%s)"):format(fname, d.name, where, type_name(d.type or "string"),
      show(v), type(v)), 0)
  end
  if type(c) == "number" then
    if c ~= c then error(("%s: option '%s'%s is NaN"):format(fname, d.name, where), 0) end
    if d.min and c < d.min then
      error(("%s: option '%s'%s must be >= %s, got %s"):format(fname, d.name, where, tostring(d.min), tostring(c)), 0)
    end
    if d.max and c > d.max then
      error(("%s: option '%s'%s must be <= %s, got %s"):format(fname, d.name, where, tostring(d.max), tostring(c)), 0)
    end
  end
  if d.choices and type(c) ~= "function" and type(c) ~= "table" then
    local ok = false
    for _, x in ipairs(d.choices) do if x == c then ok = true end end
    if not ok then
      local names = {}
      for i, x in ipairs(d.choices) do names[i] = tostring(x) end
      local hint = type(c) == "string" and adept.suggest(c, names)
      error(("%s: option '%s'%s must be one of %s, got %s%s"):format(fname, d.name, where, table.concat(names, ", "),
        show(c), hint and (" — did you mean '%s'?"):format(hint) or ""), 0)
    end
  end
  return c
end

local function default_text(d)
  if d.default == nil then return d.required and "required" or "no default" end
  if type(d.default) == "function" then return "a function" end
  return "default " .. show(d.default)
end

-- The help text of a declaration list.
function M.help_text(decls, title)
  local _, order = check_decls(decls, "adept.options")
  local by = {}
  for _, d in ipairs(decls) do by[d.name] = d end
  local lines = {}
  if title then lines[#lines + 1] = title end
  if type(decls.help) == "string" then lines[#lines + 1] = decls.help end
  lines[#lines + 1] = "options (key=value on the command line):"
  local width = 0
  for _, n in ipairs(order) do
    local d = by[n]
    local head = ("%s=%s"):format(n, type_name(d.type or "string"):upper():gsub(" OR ", "|"))
    width = math.max(width, #head)
  end
  for _, n in ipairs(order) do
    local d = by[n]
    local head = ("%s=%s"):format(n, (type_name(d.type or "string"):upper():gsub(" OR ", "|")))
    local rules = {default_text(d)}
    if d.choices then
      local c = {}
      for i, x in ipairs(d.choices) do c[i] = tostring(x) end
      rules[#rules + 1] = "one of " .. table.concat(c, ", ")
    end
    if d.min then rules[#rules + 1] = ">= " .. tostring(d.min) end
    if d.max then rules[#rules + 1] = "<= " .. tostring(d.max) end
    lines[#lines + 1] = ("  %-" .. width .. "s  %s (%s)"):format(head, d.help or "", table.concat(rules, "; "))
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Help mode (adeptlua recipe.lua --help): the first declaration prints its help and ends the process with
-- status 0, before any work. A recipe that reaches real work without declaring options ends the same way.
M.help_requested = false

local function recipe_name() return (arg and arg[0]) or "the recipe" end

local function exit_help(text)
  io.stdout:write(text)
  io.stdout:flush()
  os.exit(0, true)
end

function M.help_mode()
  M.help_requested = true
  local function guard(name)
    local real = adept[name] -- resolved now (the lazy embedded modules load here)
    adept[name] = function()
      exit_help(("%s declares no options with adept.options (reached adept.%s first); it reads key=value words "
        .. "as adept.args.\n"):format(recipe_name(), name))
    end
    return real
  end
  for _, name in ipairs{"load", "model", "dataset", "tokenizer", "train", "sweep", "adamw"} do guard(name) end
end

-- o = M.resolve(decls, layers, fname): later layers win; `layers` is an array of {values=, where=} tables
-- (where: " (from the command line)", ...). Every key must be declared, every value must check. In help mode
-- prints the help and exits.
function M.resolve(decls, layers, fname, title)
  fname = fname or "adept.options"
  local by_name, order = check_decls(decls, fname)
  if M.help_requested then exit_help(M.help_text(decls, title or recipe_name())) end
  local o, origin = {}, {}
  for _, d in ipairs(decls) do
    if d.default ~= nil then o[d.name], origin[d.name] = d.default, "default" end
  end
  for _, layer in ipairs(layers) do
    M.check_keys(layer.values or {}, order, fname .. (layer.where or ""), 2)
    for k, v in pairs(layer.values or {}) do
      o[k], origin[k] = check_value(by_name[k], v, fname, layer.where or ""), layer.name or "set"
    end
  end
  for _, d in ipairs(decls) do
    if d.required and o[d.name] == nil then
      error(("%s: option '%s' is required (%s)"):format(fname, d.name, d.help or "no help given"), 0)
    end
  end
  return o, origin
end

-- adept.args without the words the host added itself (adept._host_args: `out` from --out) that the recipe does not
-- declare: a recipe without an `out` option still runs with --out.
local function command_line_args(decls)
  local extra = rawget(adept, "_host_args")
  if type(extra) ~= "table" or type(decls) ~= "table" then return adept.args end
  local declared = {}
  for _, d in ipairs(decls) do if type(d) == "table" then declared[d.name] = true end end
  local args = {}
  for k, v in pairs(adept.args) do
    if not (extra[k] and not declared[k]) then args[k] = v end
  end
  return args
end

-- adept.options(decls [, args]): the recipe's options from the command line (adept.args by default).
function M.options(decls, args)
  local ok, o = pcall(M.resolve, decls, {{values = args or command_line_args(decls), where = " (command line)",
    name = "command line"}}, "adept.options")
  if not ok then error(o, 2) end
  return o
end

return setmetatable(M, {__call = function(_, decls, args) return M.options(decls, args) end})
