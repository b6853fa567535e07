-- adept.dist in a single process (tests/dist/ runs the multi-process cases under mpirun).
local adept = require "adept"

describe("adept.dist", function()
  it("is rank 0 of 1 outside a parallel launcher", function()
    assert.equals(0, adept.dist.rank())
    assert.equals(1, adept.dist.world_size())
    assert.is_true(adept.dist.is_main())
    assert.equals("single", adept.dist.backend())
    adept.dist.barrier()
  end)

  it("all_reduce sums over one process (identity) in place and refuses a non-f32 tensor", function()
    local t = adept.tensor({1.5, -2, 3})
    assert.equals(t, adept.dist.all_reduce(t))
    assert.same({1.5, -2, 3}, t:table())
    local ok, err = pcall(adept.dist.all_reduce, adept.tensor({1, 2}, "i32"))
    assert.is_false(ok)
    assert.matches("^adept%.dist%.all_reduce: .*f32 tensor is needed, got i32", err)
  end)

  it("broadcast returns root's string and checks the root", function()
    assert.equals("layers 2,4", adept.dist.broadcast("layers 2,4"))
    local ok, err = pcall(adept.dist.broadcast, "x", 1)
    assert.is_false(ok)
    assert.matches("root 1 is not a rank %(1 processes%)", err)
  end)
end)
