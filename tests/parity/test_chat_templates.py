#!/usr/bin/python3
"""Parity of adeptlua's chat-template rendering of instruction items with the real Jinja templates: for the
tokenizer_config.json files of ../shared/tokenizers/{qwen3,llama3}, Jinja2 (Debian's python3-jinja2, in the
sandboxed environment with trim_blocks/lstrip_blocks as transformers renders chat templates) renders each item's
messages; adeptlua's segments, joined, must equal it byte for byte, and the trained segments must be exactly the
assistant turns (as the template writes them) with their end marker."""
import json
import os
import subprocess
import sys
import tempfile

from common import adeptlua, check, failures, require_modules, skip

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("ADEPT_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
(sandbox,) = require_modules("jinja2.sandbox")
exe = adeptlua()
if not os.path.isdir(os.path.join(SHARED, "tokenizers")):
    skip(f"{SHARED}/tokenizers is missing (the shared artefacts)")

# Items of every layout, with the edge cases the templates treat specially: a system message, several turns,
# leading newlines on the last assistant turn (Qwen3 strips them), surrounding spaces (Llama 3 trims), an empty
# input, non-ASCII text.
ITEMS = [
    {"instruction": "Add the numbers.", "input": "2 3", "output": "5"},
    {"instruction": "Say hi", "input": "", "output": "\n\nHello"},
    {"instruction": "Übersetze: cat", "output": " Katze  "},
    {"prompt": "Q: 1+1?\nA:", "completion": " 2"},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
                  {"role": "assistant", "content": "b"}, {"role": "user", "content": "  c \n"},
                  {"role": "assistant", "content": "\nd"}]},
    {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"},
                  {"role": "system", "content": "later system"}, {"role": "user", "content": "z"},
                  {"role": "assistant", "content": "w\n"}]},
]


def messages_of(item):
    """The documented mapping of each layout to chat messages (docs/dataset.md)."""
    if "messages" in item:
        return item["messages"]
    if "instruction" in item:
        user = item["instruction"] + ("\n\n" + item["input"] if item.get("input") else "")
        return [{"role": "user", "content": user}, {"role": "assistant", "content": item["output"]}]
    return [{"role": "user", "content": item["prompt"]}, {"role": "assistant", "content": item["completion"]}]


def expected_trained(family, msgs):
    """The assistant turns as the template writes them, each with its end marker."""
    out = []
    last_user = max(i for i, m in enumerate(msgs) if m["role"] == "user")
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        if family == "qwen3":
            c = m["content"].lstrip("\n") if (i > last_user and i == len(msgs) - 1) else m["content"]
            out.append(c + "<|im_end|>")
        else:
            out.append(m["content"].strip() + "<|eot_id|>")
    return "".join(out)


env = sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)

with tempfile.TemporaryDirectory() as tmp:
    items_path = os.path.join(tmp, "items.jsonl")
    with open(items_path, "w", encoding="utf-8") as f:
        for it in ITEMS:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    for family in ("qwen3", "llama3"):
        cfg_path = os.path.join(SHARED, "tokenizers", family, "tokenizer_config.json")
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        bos = cfg.get("bos_token")
        bos = bos.get("content") if isinstance(bos, dict) else bos
        lua = os.path.join(tmp, "render.lua")
        with open(lua, "w") as f:
            f.write(f"local cfg_path, items_path = {json.dumps(cfg_path)}, {json.dumps(items_path)}\n" + r"""
local adept = require "adept"
local cfg = adept.json.read(cfg_path)
local family = adept._instruct.detect(cfg_path, cfg.chat_template)
local bos = type(cfg.bos_token) == "table" and cfg.bos_token.content or cfg.bos_token
if bos == adept.json.null then bos = nil end
local n = 0
for line in io.lines(items_path) do
  n = n + 1
  local segs = adept._instruct.render(line, family, bos, items_path, n)
  local all, trained = {}, {}
  for _, s in ipairs(segs) do
    all[#all + 1] = s.text
    if s.trained then trained[#trained + 1] = s.text end
  end
  io.write(adept.json.encode({family = family, all = table.concat(all), trained = table.concat(trained)}), "\n")
end
""")
        r = subprocess.run([exe, lua], capture_output=True, text=True)
        if not check(r.returncode == 0, f"{family}: adeptlua renders the items"):
            print(r.stdout, r.stderr)
            continue
        tpl = env.from_string(cfg["chat_template"])
        for k, (item, line) in enumerate(zip(ITEMS, r.stdout.splitlines())):
            got = json.loads(line)
            msgs = messages_of(item)
            ref = tpl.render(messages=msgs, bos_token=bos or "", eos_token=cfg.get("eos_token"),
                             add_generation_prompt=False)
            check(got["family"] == family, f"{family}: the template is recognised as {family}")
            if not check(got["all"] == ref, f"{family} item {k + 1}: rendering equals Jinja's"):
                print("  adeptlua:", repr(got["all"]), "\n  jinja:   ", repr(ref))
            check(got["trained"] == expected_trained(family, msgs),
                  f"{family} item {k + 1}: trained text is the assistant turns with their end marker")

    # an unrecognised template is refused naming the file and the plain template
    cfg_path = os.path.join(SHARED, "tokenizers", "mistral", "tokenizer_config.json")
    if os.path.exists(cfg_path):
        lua = os.path.join(tmp, "refuse.lua")
        with open(lua, "w") as f:
            f.write(f"local p = {json.dumps(cfg_path)}\n"
                    'local adept = require "adept"\n'
                    'local cfg = adept.json.read(p)\n'
                    'local ok, err = pcall(adept._instruct.detect, p, cfg.chat_template or "")\n'
                    'io.write(tostring(ok), "\\n", tostring(err), "\\n")\n')
        r = subprocess.run([exe, lua], capture_output=True, text=True)
        check(r.stdout.startswith("false") and cfg_path in r.stdout and 'template = "plain"' in r.stdout,
              f"mistral's template is refused naming the file and template = \"plain\": {r.stdout.strip()!r}")

sys.exit(1 if failures else 0)
