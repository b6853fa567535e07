"""Chat templates: adeptlua's own renderers (engine/data/chat_template.c) against the real Jinja templates of
../shared/tokenizers/{qwen3,llama3}/tokenizer_config.json rendered by Jinja2 the way Hugging Face's
apply_chat_template does (sandboxed environment, trim_blocks, lstrip_blocks, no generation prompt). The texts
must be identical; the learnable segments must be the assistant turns' content and end-of-turn token.
Skips (77) without ../shared, without python3-jinja2 or outside ctest."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import adeptlua, check, failures, skip  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("ADEPT_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))

try:
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:
    skip(f"{e} (Debian's python3-jinja2)")

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}],
    [{"role": "user", "content": "  padded \n"}, {"role": "assistant", "content": "\n\nlead newlines  "},
     {"role": "user", "content": "again"}, {"role": "assistant", "content": "second turn"}],
    [{"role": "user", "content": "think"}, {"role": "assistant", "content": "<think>\nsteps\n</think>\n\nanswer"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "<think>r1</think>x"},
     {"role": "user", "content": "b"}, {"role": "assistant", "content": "y"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}, {"role": "system", "content": "late system"},
     {"role": "assistant", "content": "caf\u00e9 \u65e5\u672c"}],
    [{"role": "user", "content": "<tool_response>t</tool_response>"}, {"role": "assistant", "content": "z"}],
    [{"role": "user", "content": "only a question"}],
]


def jinja_render(config, messages):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg):
        raise RuntimeError(msg)

    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)

    def token(v):
        return v.get("content") if isinstance(v, dict) else v

    return env.from_string(config["chat_template"]).render(
        messages=messages, add_generation_prompt=False, bos_token=token(config.get("bos_token")) or "",
        eos_token=token(config.get("eos_token")) or "")


def main():
    exe = adeptlua()
    configs = [os.path.join(SHARED, "tokenizers", name, "tokenizer_config.json") for name in ("qwen3", "llama3")]
    if not all(os.path.exists(c) for c in configs):
        skip(f"no tokenizer configs under {SHARED}/tokenizers (qwen3, llama3)")
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")
        with open(inp, "w", encoding="utf-8") as f:
            json.dump(CONVERSATIONS, f)
        for path in configs:
            name = os.path.basename(os.path.dirname(path))
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
            subprocess.run([exe, "-q", os.path.join(HERE, "chat_driver.lua"), "config=" + path, "input=" + inp,
                            "output=" + out], check=True)
            with open(out, encoding="utf-8") as f:
                ours = json.load(f)
            for i, messages in enumerate(CONVERSATIONS):
                want = jinja_render(config, messages)
                got = ours[i]["text"]
                if not check(got == want, f"{name} conversation {i + 1}: rendering equals the Jinja template"):
                    print("  jinja:   ", repr(want))
                    print("  adeptlua:", repr(got))
                # every learnable segment lies in the text, and each assistant turn contributes one
                learn = ours[i]["learn"]
                n_assistant = sum(m["role"] == "assistant" for m in messages)
                check(len(learn) == n_assistant and all(s in want for s in learn),
                      f"{name} conversation {i + 1}: {n_assistant} learnable assistant segments inside the text")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
