-- Escape attempts against `adeptlua --sandbox`, one entry each, run by sandbox_spec.lua. Grow this list: every
-- way out that someone thinks of becomes a case. Each case is a recipe body run as
--   adeptlua --sandbox --out $T/out --data $T/data $T/recipe/recipe.lua
-- in a fresh temp folder $T holding data/input.txt (declared), secret/secret.txt (not declared),
-- out/ (the output folder) with out/to_secret -> $T/secret and out/dangling -> $T/secret/new.txt, and
-- recipe/helper.lua (a local module). In `code`, T is the temp folder and TINY a function building a tiny model.
-- A case passes when the recipe fails with `expect` in its output (default: the sandbox message), or, for
-- allowed things (`allowed = true`), when it exits 0 and prints `expect`.
local SANDBOX = "sandbox: .* is not allowed in a sandboxed recipe %(run with %-%-trust to allow%)"

return {
  -- processes and native code
  {name = "os.execute", code = [[os.execute("id")]]},
  {name = "os.execute without arguments", code = [[print(os.execute())]]},
  {name = "io.popen", code = [[io.popen("id"):read("a")]]},
  {name = "package.loadlib", code = [[package.loadlib("libc.so.6", "system")]]},
  {name = "require of a C module through package.cpath",
   code = [[package.cpath = "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;" .. package.cpath; require "lfs"]],
   expect = "module 'lfs' not found"},
  {name = "a searcher that loads a C module", code = [[
     table.insert(package.searchers, function(n) return package.loadlib("/usr/lib/x86_64-linux-gnu/lua/5.4/lfs.so", "*") end)
     require "lfs2"]]},
  {name = "os.tmpname creates a file outside", code = [[os.tmpname()]]},
  {name = "io.tmpfile writes outside the output folder", code = [[io.tmpfile():write("x")]]},
  {name = "package.searchpath finds nothing outside", allowed = true,
   code = [[print(package.searchpath("passwd", "/etc/?"))]], expect = "nil\tno file readable in the sandbox for 'passwd'"},

  -- bytecode
  {name = "string.dump", code = [[string.dump(function() end)]]},
  {name = "string.dump through the string metatable", code = [[getmetatable("").__index.dump(print)]]},
  {name = "load of a binary string", code = [[load("\27Lua\84\0\25\147\13\10\26\10\4\8\8")]]},
  -- a reader function's pieces are not seen by the wrapper: load's forced text mode refuses them
  {name = "load of a binary chunk from a reader function (refused by the text mode)", allowed = true, code = [[
     local parts = {"\27Lua\84\0\25\147\13\10\26\10\4\8\8"}
     print(load(function() return table.remove(parts, 1) end))]],
   expect = "attempt to load a binary chunk (mode is 't')"},
  {name = "load with mode 'b'", code = [[load("return 1", "x", "b")]], expect = "loading a binary chunk"},
  {name = "loadfile with mode 'b'", code = [[loadfile(T .. "/data/input.txt", "b")]], expect = "binary chunk"},
  {name = "require of a bytecode module beside the recipe",
   code = [[local f = io.open(T .. "/out/bc.lua", "wb"); f:write("\27Lua\84\0"); f:close()
            package.path = T .. "/out/?.lua"; require "bc"]], expect = "module 'bc' not found"},

  -- the debug library and the registry
  {name = "the debug global", code = [[debug.getregistry()]], expect = "global 'debug'"},
  {name = "require 'debug'", code = [[require "debug"]], expect = "module 'debug' not found"},
  {name = "package.loaded.debug", code = [[package.loaded.debug.getregistry()]], expect = "field 'debug'"},

  -- metatables of adept userdata and the module table
  {name = "a model method taken from the metatable", code = [[
     local m = TINY(); local save = getmetatable(m).methods.save; save(m, T .. "/secret/model")]]},
  {name = "replacing adept.sandboxed does not lift the sandbox", code = [[
     rawset(adept, "sandboxed", function() return false end); setmetatable(adept, nil)
     io.open(T .. "/secret/secret.txt")]]},
  {name = "a fake adept in package.loaded", code = [[
     package.loaded.adept = {load = adept.load}; require("adept").load(T .. "/secret")]]},
  {name = "tensor metatable __index to reach a path function", code = [[
     local mt = getmetatable(adept.zeros{2}); mt.__index.save = adept.save_tensors
     adept.zeros{2}.save(T .. "/secret/t.safetensors", {})]]},

  -- files: io, os, dofile/loadfile, `..` and symbolic links
  {name = "io.open outside", code = [[io.open("/etc/passwd")]]},
  {name = "io.open of an undeclared file", code = [[io.open(T .. "/secret/secret.txt")]]},
  {name = "io.open r+ of a declared input (a write)", code = [[io.open(T .. "/data/input.txt", "r+")]],
   expect = "writing '"},
  {name = "io.lines outside", code = [[for l in io.lines("/etc/passwd") do end]]},
  {name = "io.input outside", code = [[io.input("/etc/passwd")]]},
  {name = "io.output outside", code = [[io.output(T .. "/secret/new.txt")]]},
  {name = "os.remove of an input", code = [[os.remove(T .. "/data/input.txt")]]},
  {name = "os.rename of an input into the output folder", code = [[os.rename(T .. "/data/input.txt", T .. "/out/x")]]},
  {name = "dofile outside", code = [[dofile(T .. "/secret/secret.txt")]]},
  {name = "loadfile outside", code = [[loadfile("/etc/passwd")]]},
  {name = "'..' out of the output folder", code = [[io.open(T .. "/out/../secret/secret.txt")]]},
  {name = "'..' below a folder that does not exist yet", code = [[io.open(T .. "/out/new/../../secret/x", "w")]],
   expect = "'%.%.' below a folder that does not exist"},
  {name = "a symbolic link in the output folder (read)", code = [[io.open(T .. "/out/to_secret/secret.txt")]]},
  {name = "a symbolic link in the output folder (write)", code = [[io.open(T .. "/out/to_secret/new.txt", "w")]]},
  {name = "a dangling symbolic link in the output folder", code = [[io.open(T .. "/out/dangling", "w")]],
   expect = "dangling symbolic link"},
  {name = "writing beside the recipe", code = [[io.open(T .. "/recipe/evil.lua", "w")]]},
  {name = "package.path pointing outside", code = [[package.path = T .. "/secret/?.txt"; require "secret"]],
   expect = "module 'secret' not found"},
  {name = "a searcher that reads outside", code = [[
     table.insert(package.searchers, function(n) return loadfile("/etc/passwd") end); require "zzz"]]},
  {name = "require with '..' in the name", code = [[require "..secret.secret"]], expect = "not found"},

  -- environment tricks
  {name = "load with an environment of its own", code = [[load("return io.open(...)", "x", "t", {io = io})("/etc/passwd")]]},
  {name = "a local _ENV", code = [[local _ENV = {io = io}; io.open("/etc/passwd")]]},
  {name = "a coroutine", code = [[coroutine.wrap(function() io.open("/etc/passwd") end)()]]},

  -- engine functions that take a path
  {name = "adept.load outside", code = [[adept.load(T .. "/secret")]]},
  {name = "m:save outside", code = [[TINY():save(T .. "/secret/model")]]},
  {name = "adept.tokenizer outside", code = [[adept.tokenizer(T .. "/secret/secret.txt")]]},
  {name = "adept.dataset path outside", code = [[adept.dataset{path = T .. "/secret/secret.txt", seq_len = 4}]]},
  {name = "adept.dataset cache_dir outside",
   code = [[adept.dataset{path = T .. "/data/input.txt", seq_len = 4, cache_dir = T .. "/secret"}]]},
  {name = "adept.save_tensors outside", code = [[adept.save_tensors(T .. "/secret/t.safetensors", {x = adept.zeros{2}})]]},
  {name = "adept.load_tensors outside", code = [[adept.load_tensors(T .. "/secret/secret.txt")]]},
  {name = "adept.save_weights outside", code = [[adept.save_weights(TINY(), T .. "/secret/w.safetensors")]]},
  {name = "adept.load_weights outside", code = [[adept.load_weights(TINY(), {T .. "/out/none", T .. "/secret/w"})]]},
  {name = "adept.save_rows outside",
   code = [[adept.save_rows(TINY(), T .. "/secret/r.safetensors", {"model.norm.weight"}, string.rep("0", 64), 1)]]},
  {name = "adept.read_rows outside", code = [[adept.read_rows(T .. "/secret/secret.txt")]]},
  {name = "opt:save_state outside", code = [[local m = TINY(); adept.adamw(m, {lr = 1e-3}):save_state(T .. "/secret/o")]]},
  {name = "opt:load_state outside", code = [[local m = TINY(); adept.adamw(m, {lr = 1e-3}):load_state(T .. "/secret/secret.txt")]]},
  {name = "adept.json.read outside", code = [[adept.json.read("/etc/passwd")]]},
  {name = "adept.json.write outside", code = [[adept.json.write(T .. "/secret/x.json", {})]]},
  {name = "adept.chart outside", code = [[adept.chart.line{path = T .. "/secret/c.png", series = {{x = {1, 2}, y = {1, 2}}}}]]},
  {name = "adept.eval.read_choices outside", code = [[adept._eval.read_choices("/etc/passwd")]]},
  {name = "adept.fs.remove_tree outside", code = [[adept.fs.remove_tree(T .. "/data")]]},
  {name = "adept.fs.rename outside", code = [[adept.fs.rename(T .. "/data/input.txt", T .. "/out/x")]]},
  {name = "adept.fs.mkdir_p outside", code = [[adept.fs.mkdir_p(T .. "/secret/d")]]},
  {name = "adept.fs.list outside", code = [[adept.fs.list("/etc")]]},
  {name = "adept.fs.exists probes outside", code = [[adept.fs.exists("/etc/passwd")]]},
  {name = "adept.fs.stat outside", code = [[adept.fs.stat(T .. "/secret/secret.txt")]]},
  {name = "adept.fs.sha256 of an undeclared file", code = [[adept.fs.sha256(T .. "/secret/secret.txt")]]},
  {name = "adept.fs.fsync outside", code = [[adept.fs.fsync(T .. "/secret/secret.txt")]]},
  {name = "adept.provenance hashing an undeclared input", code = [[adept.provenance.hash_inputs{T .. "/secret"}]]},
  {name = "adept.dataset with a tokenizer path outside",
   code = [[adept.dataset{path = T .. "/data/input.txt", tokenizer = T .. "/secret/secret.txt", seq_len = 4}]]},
  {name = "adept.report into a folder outside", code = [[adept.report{dir = T .. "/secret", runs = {}}]]},
  {name = "adept.eval.choices outside", code = [[adept.eval.choices(TINY(), {encode = function() return {} end}, "/etc/passwd")]]},
  {name = "adept.eval.generate_match reading outside",
   code = [[adept.eval.generate_match(TINY(), {encode = function() return {1} end}, "/etc/passwd")]]},
  {name = "adept.eval.generate_match writing outside", code = [[
     local tok = {encode = function() return {1} end, decode = function() return "" end}
     adept.eval.generate_match(TINY(), tok, {{question = "q", answer = "1"}},
                               {max_new_tokens = 1, out = T .. "/secret/records.jsonl"})]]},
  {name = "adept._bundle.write outside", code = [[adept._bundle.write(T .. "/secret/x.adept", {{name = "a", data = "b"}})]]},
  {name = "adept._bundle.write packing an undeclared file",
   code = [[adept._bundle.write(T .. "/out/x.adept", {{name = "a", file = T .. "/secret/secret.txt"}})]]},
  {name = "adept._bundle.extract outside", code = [[
     adept._bundle.write(T .. "/out/x.adept", {{name = "a", data = "b"}}); adept._bundle.extract(T .. "/out/x.adept", T .. "/secret/x")]]},
  {name = "adept._bundle.list of an undeclared file", code = [[adept._bundle.list(T .. "/secret/secret.txt")]]},
  {name = "adept._bundle.member of an undeclared file", code = [[adept._bundle.member(T .. "/secret/secret.txt", "a")]]},
  {name = "adept._bundle.link", code = [[adept._bundle.link(T .. "/secret", T .. "/out/link")]]},
  {name = "adept.bundle's commands from inside a recipe", code = [[
     local rc = adept.bundle.main("/bin/sh", {"pack", T .. "/recipe/helper.lua", "-o", T .. "/secret/x.adept"}, {})
     if rc ~= 0 then error("pack failed") end]]},
  {name = "adept.sweep spawns processes", code = [[adept.sweep{recipe = "x.lua", grid = {k = {1}}, out = T .. "/out/s"}]]},

  -- what a sandboxed recipe may do
  {name = "os.getenv", allowed = true, code = [[print("home=" .. tostring(os.getenv("HOME") ~= nil))]], expect = "home=true"},
  {name = "reading a declared input", allowed = true, code = [[print(io.open(T .. "/data/input.txt"):read("l"))]],
   expect = "the declared input"},
  {name = "writing, renaming, removing under the output folder", allowed = true, code = [[
     local f = assert(io.open(T .. "/out/a.txt", "w")); f:write("x"); f:close()
     assert(os.rename(T .. "/out/a.txt", T .. "/out/b.txt")); assert(os.remove(T .. "/out/b.txt"))
     adept.fs.mkdir_p(T .. "/out/d/e"); adept.json.write(T .. "/out/d/e/x.json", {a = 1})
     print("wrote " .. adept.json.read(T .. "/out/d/e/x.json").a)]], expect = "wrote 1"},
  {name = "a local Lua module beside the recipe", allowed = true, code = [[print(require("helper").hello)]],
   expect = "hello from helper"},
  {name = "the embedded library", allowed = true, code = [[print(adept.schedule.cosine{warmup = 1}(0, 10))]],
   expect = "0"},
  {name = "text chunks through load", allowed = true, code = [[print(load("return 6 * 7")())]], expect = "42"},
  {name = "the corpus cache follows the output folder", allowed = true,
   code = [[print(os.getenv("ADEPT_CACHE"):find(T .. "/out/", 1, true) == 1 or os.getenv("ADEPT_CACHE"))]],
   expect = "true"},
  {name = "a model saved and loaded in the output folder", allowed = true,
   code = [[TINY():save(T .. "/out/m"); print(adept.load(T .. "/out/m"):num_layers())]], expect = "1"},
  {name = "provenance's hash cache follows the output folder", allowed = true, code = [[
     local h = adept.provenance.hash_inputs{T .. "/data/input.txt"}
     print(#h, adept.fs.exists(T .. "/out/.adept/sha256.json"))]], expect = "1\tfile"},
  {name = "a declared input through adept.fs", allowed = true, code = [[
     print(adept.fs.stat(T .. "/data/input.txt").size, #adept.fs.sha256(T .. "/data/input.txt"), adept.fs.list(T .. "/data")[1])]],
   expect = "19\t64\tinput.txt"},
  {name = "a bundle written and read back in the output folder", allowed = true, code = [[
     adept._bundle.write(T .. "/out/x.adept", {{name = "a.txt", file = T .. "/data/input.txt"}})
     io.write(adept._bundle.member(T .. "/out/x.adept", "a.txt"))]], expect = "the declared input"},
  {name = "adept.report into a new folder under the output folder", allowed = true, code = [[
     adept.report{dir = T .. "/out/rep/sub", runs = {}}; print(adept.fs.exists(T .. "/out/rep/sub/report.md"))]],
   expect = "file"},
  SANDBOX = SANDBOX,
}
