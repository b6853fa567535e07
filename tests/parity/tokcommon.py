"""Shared helpers of the tokenizer parity tests: text slices from the shared corpora (deterministic), hard cases,
and running the adeptlua driver on one batch file."""
import gzip, os, random, struct, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("ADEPT_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
ADEPTLUA = os.environ.get("ADEPTLUA", os.path.join(HERE, "..", "..", "build", "adeptlua"))


def skip(msg):
    print("SKIP:", msg)
    sys.exit(77)


def corpus_texts():
    d = os.path.join(SHARED, "corpora")
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        p = os.path.join(d, name)
        if name.endswith(".txt.gz"):
            with gzip.open(p, "rb") as f:
                out.append((name, f.read(4 << 20)))
        elif name.endswith(".txt"):
            with open(p, "rb") as f:
                out.append((name, f.read(4 << 20)))
    return out


def slices(n, seed=1234, maxlen=600):
    """n random byte slices of random lengths, cut on UTF-8 boundaries (valid text)."""
    rng = random.Random(seed)
    texts = corpus_texts()
    if not texts:
        skip("no corpora under %s/corpora" % SHARED)
    out = []
    for i in range(n):
        name, data = texts[i % len(texts)]
        L = rng.choice([1, 2, 5, 20, 80, 200, maxlen])
        L = rng.randint(1, L)
        a = rng.randrange(0, max(1, len(data) - L))
        s = data[a:a + L].decode("utf-8", errors="ignore")
        if s:
            out.append(s.encode("utf-8"))
    return out


HARD = [
    "", " ", "  ", "   x", "a  b   c    d", "\n", "\n\n", " \n \n", "\t\tindent\t", "line1\r\nline2\r\n",
    "trailing spaces   ", "   leading", "12345678901234567890", "3.14159 2,718 1e-10 0x1F", "don't I'll we're they've she's I'm he'd",
    "DON'T WE'RE", "Hello, world!", "😀😃😄 emoji 👩‍👩‍👧‍👦 flags 🇫🇷🇩🇪", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕏", "中文测试，日本語のテキスト、한국어 텍스트",
    "Ελληνικά κείμενα και Кириллица", "مرحبا بالعالم", "नमस्ते दुनिया", "e\u0301 combining", "café naïve Å",
    "ﬁ ligature ① ² ＡＢＣ full width", "\u00a0nbsp\u2009thin\u3000ideographic", "zero\u200bwidth",
    "<|endoftext|>", "text<|endoftext|>more", "<s>hello</s>", "<|begin_of_text|>Hi<|end_of_text|>",
    "<|im_start|>user\nhi<|im_end|>", "<unk>", "a<s>b", "x <|endoftext|> y", "$$$ ### @@@ ~~~", "...!!!???",
    "tab\there", "mixed\t \n\t stuff", "ab" * 300, "a" * 1000, " " * 50 + "x", "\n" * 20,
    "The quick brown fox jumps over the lazy dog.", "http://example.com/path?q=1&r=2#frag", "snake_case camelCase",
    "\u2581already metaspace\u2581", "ÀÁÂÃÄÅ àáâãäå", "\x00nul\x01ctl\x7f", "₿€£¥", "I.B.M. U.S.A.", "x²+y³=z⁴",
]


def write_batch(texts):
    fd, p = tempfile.mkstemp(suffix=".bin")
    with os.fdopen(fd, "wb") as f:
        for t in texts:
            f.write(struct.pack("<I", len(t)))
            f.write(t)
    return p


def run_adept(tok_path, texts, flags=""):
    if not os.path.exists(ADEPTLUA):
        skip("adeptlua not built at %s" % ADEPTLUA)
    inp = write_batch(texts)
    out = inp + ".out"
    try:
        cmd = [ADEPTLUA, "-q", os.path.join(HERE, "tok_driver.lua"), "tok=" + tok_path, "input=" + inp, "output=" + out]
        cmd += ["flags=" + flags] if flags else []
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode != 0:
            print(r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
            raise SystemExit("adeptlua driver failed")
        data = open(out, "rb").read()
    finally:
        for p in (inp, out):
            if os.path.exists(p):
                os.unlink(p)
    res, pos = [], 0
    for _ in texts:
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        ids = list(struct.unpack_from("<%di" % n, data, pos))
        pos += 4 * n
        (dl,) = struct.unpack_from("<I", data, pos)
        pos += 4
        res.append((ids, data[pos:pos + dl]))
        pos += dl
    return res
