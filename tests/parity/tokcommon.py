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
    "\u2581already metaspace\u2581", "it'\u017f long s 'S 'LL \u212a kelvin", "nel\u0085line", "bom\ufeffin text",
    "\u180emongolian \u200d zwj", "ß straße ǅ ǈ", "İstanbul ı", "\r\n\r\n\t \u3000\u3000x", "  \n  \n",
    "1 22 333 4444 55555 ١٢٣ ４５６ ²³", "a\u0300\u0301\u0302 Å Å", "\ud7ff\ue000\uffff \U0010ffff",
    "<|endoftext|><|endoftext|>", " <|im_start|> ", "<s><s></s>", "<|reserved_special_token_5|>", "<<||>>",
    "emoji skin 👍🏽 keycap 1️⃣ zwj 👨‍💻", "math 𝑥∈ℝ ∑∫", "a'b'c's'd", "'s'S'", "x\x0by\x0cz", "ÀÁÂÃÄÅ àáâãäå", "\x00nul\x01ctl\x7f", "₿€£¥", "I.B.M. U.S.A.", "x²+y³=z⁴",
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
    return parse_results(data, len(texts))


POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  \t\n\r\x0b\x0c",
    "\u00a0\u3000\u2028\u2029\u0085\ufeff\u200b\u180e\u2009", "'\"`.,;:!?-_()[]{}<>/\\|@#$%^&*+=~",
    "éèêëàâäôöùûüçñßÆØÅæøåœ", "\u0300\u0301\u0308\u0327", "中文日本語한국어漢字", "😀👍🏽👨‍💻🇫🇷1️⃣",
    "ΑΒΓαβγДЖЗдж", "١٢٣٤٥٦٧٨٩٠", "𝑥𝔘ℝ∑∫", "ſK\u212a\u0130\u0131",
]
SPECIALS = ["<|endoftext|>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|begin_of_text|>", "<|end_of_text|>"]


def random_texts(n, seed=99):
    """Synthetic strings mixing scripts, white space variants, digits, punctuation and special tokens."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if r < 0.05:
                parts.append(rng.choice(SPECIALS))
            else:
                pool = rng.choice(POOLS)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
        out.append("".join(parts).encode("utf-8"))
    for _ in range(n // 10):  # raw bytes: invalid UTF-8 (both sides see U+FFFD)
        out.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 30))))
    return out


def parse_results(data, count):
    """Reads `count` records of (u32 n, n x i32 ids, u32 len, len bytes of decoded text), the format both
    drivers (tok_driver.lua and tok_ref.mjs) write."""
    res, pos = [], 0
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        ids = list(struct.unpack_from("<%di" % n, data, pos))
        pos += 4 * n
        (dl,) = struct.unpack_from("<I", data, pos)
        pos += 4
        res.append((ids, data[pos:pos + dl]))
        pos += dl
    return res
