"""llama2.c tokenizer.bin (stories260K tok512.bin): adeptlua's ids against a straightforward Python port of
llama2.c run.c's encode (quadratic best-score merge loop), on thousands of corpus slices and hard cases."""
import os, struct, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokcommon as tc


def load(path):
    data = open(path, "rb").read()
    (maxlen,) = struct.unpack_from("<i", data, 0)
    pos, vocab, scores = 4, [], []
    while pos < len(data):
        score, n = struct.unpack_from("<fi", data, pos)
        pos += 8
        vocab.append(data[pos:pos + n])
        scores.append(score)
        pos += n
    return vocab, scores


def encode(vocab, scores, text, bos=True):
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)
    toks = [1] if bos else []
    if text:
        toks.append(lookup[b" "])
    buf = b""
    for i, c in enumerate(text):
        if (c & 0xC0) != 0x80:
            buf = b""
        buf += bytes([c])
        if i + 1 < len(text) and (text[i + 1] & 0xC0) == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            toks.append(lookup[buf])
        else:
            toks.extend(b + 3 for b in buf)
        buf = b""
    start = 1 if bos else 0
    while True:
        best, bi, bid = -1e10, -1, -1
        for i in range(start, len(toks) - 1):
            s = vocab[toks[i]] + vocab[toks[i + 1]]
            j = lookup.get(s, -1)
            if j != -1 and scores[j] > best:
                best, bi, bid = scores[j], i, j
        if bi == -1:
            break
        toks[bi:bi + 2] = [bid]
    return toks


def main():
    path = os.path.join(tc.SHARED, "models", "stories260K", "tok512.bin")
    if not os.path.exists(path):
        tc.skip("%s not found" % path)
    vocab, scores = load(path)
    texts = tc.slices(3000, seed=7, maxlen=300) + [h.encode("utf-8") for h in tc.HARD if len(h) < 400]
    texts += [b"\xff\xfe bad", b"abc\x80\x80def", b"\xe2\x82", b"\xf0\x9f\x98"]  # invalid UTF-8: raw bytes in
    # the model path resolves to tok512.bin beside it (the documented lookup)
    got = tc.run_adept(os.path.join(tc.SHARED, "models", "stories260K", "stories260K.bin"), texts)
    bad = 0
    for t, (ids, dec) in zip(texts, got):
        want = encode(vocab, scores, t)
        if ids != want:
            bad += 1
            if bad <= 5:
                print("MISMATCH", t[:80], "\n  adept", ids[:30], "\n  ref  ", want[:30])
        elif dec.replace(b"\n<s>\n", b"", 1) != t:
            bad += 1
            if bad <= 5:
                print("ROUNDTRIP", t[:80], dec[:80])
    print("llama2c: %d texts, %d mismatches" % (len(texts), bad))
    sys.exit(1 if bad else 0)


main()
