"""Rounding to bf16 in the float64 references of the bf16 parity tests (test_bf16_frozen.py for frozen bf16 rows,
test_bf16_precision.py for precision "bf16"), with the handling of operands near a bf16 rounding midpoint that
both need."""
import itertools

import reference  # skips (77) without torch / numpy

torch = reference.torch

# adeptlua rounds its fp32 operands, the reference its float64 ones: they round alike unless an operand lies
# closer to a bf16 rounding midpoint than the two differ (fp32 activations agree with float64 to ~1e-7 relative
# here, below AMBIGUOUS). Such an operand may round either way in adeptlua, moving the result by a bf16 ulp of it
# (gradients by up to ~1e-3 relative: more than TOL), and which way depends on the fp32 sums' order, so on the
# BLAS kernels (OPENBLAS_CORETYPE). The reference is therefore evaluated with every subset of those operands
# rounded the other way (greedily, by the size of each flip's effect, past MAX_EXHAUSTIVE of them), and adeptlua
# must match the closest evaluation to TOL. The checks print how many flips that took.
AMBIGUOUS = 2.0 ** -19
MAX_EXHAUSTIVE = 10
rounding = {"calls": 0, "record": None, "flip": frozenset()}


def bf16(x):
    """x rounded to bf16 as adeptlua does: its fp32 value (x is float64 here, the fp32 one's reference) to nearest
    even bf16. Records the operands within AMBIGUOUS of a rounding midpoint; rounds those in rounding["flip"]
    (a set of (call, flat index)) the other way."""
    call = rounding["calls"]
    rounding["calls"] += 1
    f = x.float()
    r = f.bfloat16().double()
    lo = (f.view(torch.int32) & ~0xFFFF).view(torch.float32).double()
    hi = ((f.view(torch.int32) & ~0xFFFF) + 0x10000).view(torch.float32).double()
    near = ((x - (lo + hi) / 2).abs() <= AMBIGUOUS * x.abs()).reshape(-1)
    if rounding["record"] is not None:
        rounding["record"] += [(call, int(i)) for i in near.nonzero().reshape(-1)]
    mine = [i for c, i in rounding["flip"] if c == call]
    if mine:
        r = r.clone()
        flat, lo, hi = r.view(-1), lo.reshape(-1), hi.reshape(-1)
        for i in mine:
            flat[i] = lo[i] if flat[i] == hi[i] else hi[i]
    return r


def closest(evaluate, error):
    """(reference, its error, candidates, flipped): evaluate() with the subset of ambiguous operands rounded the
    other way that brings error(reference) lowest"""
    def run(flips):
        rounding.update(calls=0, flip=frozenset(flips))
        r = evaluate()
        return r, error(r)
    rounding.update(calls=0, record=[], flip=frozenset())
    ref = evaluate()
    candidates = rounding["record"]
    rounding["record"] = None
    best, best_err, best_flips = ref, error(ref), ()
    if len(candidates) <= MAX_EXHAUSTIVE:
        subsets = (s for k in range(1, len(candidates) + 1) for s in itertools.combinations(candidates, k))
        for flips in subsets:
            r, e = run(flips)
            if e < best_err:
                best, best_err, best_flips = r, e, flips
    else:
        for c in candidates:
            r, e = run(best_flips + (c,))
            if e < best_err:
                best, best_err, best_flips = r, e, best_flips + (c,)
    rounding.update(calls=0, flip=frozenset())
    return best, best_err, len(candidates), len(best_flips)


def which(candidates, flipped):
    return "%d operand(s) near a bf16 midpoint; %s" % (candidates, "none rounded otherwise" if not flipped else
                                                        "adeptlua rounded %d of them the other way" % flipped)
