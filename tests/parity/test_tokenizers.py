"""Tokenizer exactness: adeptlua's ids (and decoded text) against @huggingface/tokenizers (npm, pure JS) for the
shared gpt2, qwen3, llama3 and mistral tokenizer.json files, on thousands of deterministic random slices of the
shared corpora plus hand-picked hard cases and invalid UTF-8 (both sides see U+FFFD for invalid sequences).
Each side runs once per tokenizer over one batch file. Skips (77) without ../shared, node or the npm package."""
import os, shutil, struct, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokcommon as tc

N_SLICES = int(os.environ.get("TOK_PARITY_SLICES", "2000"))
NAMES = ["gpt2", "qwen3", "llama3", "mistral"]
INVALID = [b"\xff\xfe bad", b"abc\x80\x80def", b"\xe2\x82", b"\xf0\x9f\x98 x", b"\xc0\xaf", b"\xed\xa0\x80 surrogate",
           b"ok \xf4\x90\x80\x80 big", b"<|endoftext|\xff>", b"\xef\xbb\xbfBOM text"]


def start_reference(dirpath, texts):
    """Starts node on the batch (it runs while adeptlua encodes the same batch); finish_reference collects it."""
    inp = tc.write_batch(texts)
    proc = subprocess.Popen(["node", os.path.join(tc.HERE, "tok_ref.mjs"), dirpath, inp, inp + ".ref"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tc.HERE)
    return proc, inp


def finish_reference(started, texts):
    proc, inp = started
    out = inp + ".ref"
    try:
        _, err = proc.communicate()
        if proc.returncode != 0:
            print(err.decode(errors="replace")[-3000:])
            raise SystemExit("reference failed")
        sys.stdout.write("  " + err.decode(errors="replace"))
        data = open(out, "rb").read()
    finally:
        for p in (inp, out):
            if os.path.exists(p):
                os.unlink(p)
    return tc.parse_results(data, len(texts))


def main():
    tokdir = os.path.join(tc.SHARED, "tokenizers")
    if not os.path.isdir(tokdir):
        tc.skip("%s not found" % tokdir)
    if not shutil.which("node"):
        tc.skip("node not installed")
    r = subprocess.run([os.path.join(tc.HERE, "setup_node.sh")])
    if r.returncode != 0:
        tc.skip("@huggingface/tokenizers not installed and npm could not fetch it")
    texts = tc.slices(N_SLICES, seed=42) + [h.encode("utf-8") for h in tc.HARD] + INVALID
    texts += tc.random_texts(int(os.environ.get("TOK_PARITY_RANDOM", "600")))
    total_bad = 0
    tmp = tempfile.mkdtemp()
    variants = [(n, os.path.join(tokdir, n)) for n in NAMES]
    l3 = os.path.join(tokdir, "llama3", "tokenizer.json")
    if os.path.exists(l3):
        # Llama-3.1's layout: a Sequence post-processor [ByteLevel, TemplateProcessing adding <|begin_of_text|>]
        import json
        d = json.load(open(l3))
        bot = "<|begin_of_text|>"
        d["post_processor"] = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": bot, "type_id": 0}},
                                                      {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {bot: {"id": bot, "ids": [128000], "tokens": [bot]}}}]}
        os.makedirs(os.path.join(tmp, "llama3-seq"))
        json.dump(d, open(os.path.join(tmp, "llama3-seq", "tokenizer.json"), "w"))
        shutil.copy(os.path.join(tokdir, "llama3", "tokenizer_config.json"), os.path.join(tmp, "llama3-seq"))
        variants.append(("llama3-seq", os.path.join(tmp, "llama3-seq")))
    for base in ("qwen3", "mistral"):
        q3 = os.path.join(tokdir, base, "tokenizer.json")
        if not os.path.exists(q3):
            continue
        # added tokens matched after normalization (normalized: true; Mistral's Prepend changes them), and
        # lstrip/rstrip around them
        import json
        d = json.load(open(q3))
        for i, a in enumerate(d["added_tokens"]):
            a["normalized"] = True
            a["lstrip"] = i % 2 == 0
            a["rstrip"] = i % 3 == 0
        name = base + "-addnorm"
        os.makedirs(os.path.join(tmp, name))
        json.dump(d, open(os.path.join(tmp, name, "tokenizer.json"), "w"))
        shutil.copy(os.path.join(tokdir, base, "tokenizer_config.json"), os.path.join(tmp, name))
        variants.append((name, os.path.join(tmp, name)))
    # components the four files do not use, on real vocabularies
    import json
    extra = [
        ("mistral", "mistral-metaspace", {
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
                {"type": "Strip", "strip_left": True, "strip_right": True}]},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                              "split": False},
            "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}}),
        ("gpt2", "gpt2-digits", {
            "normalizer": {"type": "NFD"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]},
            "post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", 50256],
                               "cls": ["<|endoftext|>", 50256], "trim_offsets": True, "add_prefix_space": True}}),
    ]
    for base, name, changes in extra:
        src = os.path.join(tokdir, base, "tokenizer.json")
        if not os.path.exists(src):
            continue
        d = json.load(open(src))
        d.update(changes)
        os.makedirs(os.path.join(tmp, name))
        json.dump(d, open(os.path.join(tmp, name, "tokenizer.json"), "w"))
        cfg = os.path.join(tokdir, base, "tokenizer_config.json")
        if os.path.exists(cfg):
            shutil.copy(cfg, os.path.join(tmp, name))
        variants.append((name, os.path.join(tmp, name)))
    all_texts = texts
    for name, d in variants:
        if not os.path.exists(os.path.join(d, "tokenizer.json")):
            print("  %s: absent, skipped" % name)
            continue
        # the shared files get every text; the derived variants every third (they share most of the code path)
        texts = all_texts if name in NAMES else all_texts[::3]
        started = start_reference(d, texts)
        got = tc.run_adept(os.path.join(d, "tokenizer.json"), texts)
        ref = finish_reference(started, texts)
        bad = rt = dec_bad = 0
        for t, (rids, rdec), (ids, dec) in zip(texts, ref, got):
            if ids != rids:
                bad += 1
                if bad <= 4:
                    print("  %s MISMATCH %r\n    adept %s\n    ref   %s" % (name, t[:100], ids[:40], rids[:40]))
            elif dec != rdec:
                dec_bad += 1
                if dec_bad <= 4:
                    print("  %s DECODE %r\n    adept %r\n    ref   %r" % (name, t[:80], dec[:120], rdec[:120]))
            if rdec == t and dec != t:
                rt += 1
        print("%s: %d texts, %d id mismatches, %d decode mismatches, %d round-trip failures" %
              (name, len(texts), bad, dec_bad, rt))
        total_bad += bad + dec_bad + rt
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if total_bad else 0)


main()
