-- tests/bench/scale: the process's peak resident set (VmHWM of /proc/self/status) in bytes; returned as a function
-- for the scripts beside it (dofile).
return function()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then return tonumber(kb) * 1024 end
  end
end
