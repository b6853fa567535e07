"""The one PyTorch reference model of the parity tests, written from the Hugging Face LLaMA-family semantics:
token embedding, per layer RMSNorm -> q/k/v projections (optional biases, Qwen2) -> optional q/k RMSNorm over
each head (Qwen3) -> RoPE (rotate_half pairs (i, i + D/2) as HF does, or llama2.c's interleaved pairs
(2i, 2i + 1)) -> causal grouped-query softmax attention -> o_proj, residual -> RMSNorm -> SwiGLU MLP, residual;
final RMSNorm and the head (tied to the embedding when there is no lm_head.weight); token-mean cross-entropy
ignoring targets of -1. It runs in the dtype of the weights given (the tests use float64), on HF tensor names.
Also: the tiny configs and random weights of each family that the directory tests write. Importing it skips the
test (exit 77) when torch or numpy is missing."""
import math

from common import require_modules, st_decode

np, torch = require_modules("numpy", "torch")
F = torch.nn.functional


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def scaled_inv_freq(inv, scaling):
    """rope_scaling of a config applied to the inverse frequencies (float64), as transformers' rope init functions
    define it: "linear" divides every frequency by factor; "llama3" divides the low frequencies (wavelength above
    original_max_position_embeddings / low_freq_factor) by factor, keeps the high ones (below .../high_freq_factor)
    and blends linearly in 1/wavelength between."""
    if not scaling or scaling.get("rope_type", scaling.get("type")) in (None, "default"):
        return inv
    kind, factor = scaling.get("rope_type", scaling.get("type")), scaling["factor"]
    if kind == "linear":
        return inv / factor
    if kind != "llama3":
        raise ValueError("rope_scaling %r is not in the reference" % kind)
    old, lo, hi = scaling["original_max_position_embeddings"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    wavelen = 2 * math.pi / inv
    smooth = (old / wavelen - lo) / (hi - lo)
    blended = (1 - smooth) * inv / factor + smooth * inv
    out = torch.where(wavelen > old / lo, inv / factor, inv)
    medium = (wavelen >= old / hi) & (wavelen <= old / lo)
    return torch.where(medium, blended, out)


def rope(x, T, D, theta, style, dtype, scaling=None):
    """x (B, T, heads, D) rotated by position: style "half" (HF rotate_half) or "interleaved" (llama2.c)."""
    inv = scaled_inv_freq(1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D), scaling)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]  # (T, D/2)
    cos, sin = ang.cos().to(dtype)[:, None, :], ang.sin().to(dtype)[:, None, :]
    if style == "half":
        c, s = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
        return x * c + rotate_half(x) * s
    if style == "interleaved":
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)
    raise ValueError(f"rope style {style!r}: expected 'half' or 'interleaved'")


def forward(cfg, W, inputs, rope_style="half", mm=None):
    """Logits (B, T, V) of a batch of token ids (B x T: a tensor, or lists) under HF config keys cfg and
    HF-named weights W (torch tensors, one dtype). mm(x, w, name), when given, computes each product x @ w^T with
    the weight named `name` (test_bf16_frozen.py rounds the operands of bf16 rows with it)."""
    if mm is None:
        mm = lambda x, w, name: x @ w.T
    inputs = torch.as_tensor(inputs)
    B, T = inputs.shape
    C, H, KH = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or C // H
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    emb = W["model.embed_tokens.weight"]
    mask = torch.full((T, T), float("-inf"), dtype=emb.dtype).triu(1)
    # a sliding window (Mistral; Qwen2/3 only with use_sliding_window): key j visible to query i when i - W < j
    window = cfg.get("sliding_window")
    if (cfg.get("architectures") or [""])[0].startswith("Qwen") and not cfg.get("use_sliding_window"):
        window = None
    if window and window < T:
        mask = mask + torch.full((T, T), float("-inf"), dtype=emb.dtype).tril(-window)
    x = emb[inputs]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)

        def lin(name):
            y = mm(h, W[p + name + ".weight"], p + name + ".weight")
            return y + W[p + name + ".bias"] if p + name + ".bias" in W else y
        q = lin("self_attn.q_proj").view(B, T, H, D)
        k = lin("self_attn.k_proj").view(B, T, KH, D)
        v = lin("self_attn.v_proj").view(B, T, KH, D)
        if p + "self_attn.q_norm.weight" in W:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        scaling = cfg.get("rope_scaling")
        q = rope(q, T, D, theta, rope_style, emb.dtype, scaling)
        k = rope(k, T, D, theta, rope_style, emb.dtype, scaling)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, D)
        k, v = k.repeat_interleave(H // KH, dim=1), v.repeat_interleave(H // KH, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / D ** 0.5 + mask, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + mm(y, W[p + "self_attn.o_proj.weight"], p + "self_attn.o_proj.weight")
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = mm(h, W[p + "mlp.gate_proj.weight"], p + "mlp.gate_proj.weight")
        u = mm(h, W[p + "mlp.up_proj.weight"], p + "mlp.up_proj.weight")
        x = x + mm(F.silu(g) * u, W[p + "mlp.down_proj.weight"], p + "mlp.down_proj.weight")
    head = "lm_head.weight" if "lm_head.weight" in W else "model.embed_tokens.weight"
    return mm(rms_norm(x, W["model.norm.weight"], eps), W[head], head)


def tensor_from_st(dtype, shape, raw):
    """A float64 tensor from safetensors bytes (see common.st_decode)."""
    return torch.tensor(st_decode(dtype, shape, raw))


def loss(logits, targets):
    """Mean cross-entropy over the targets that are not -1 (what adept.forward_backward reports per token)."""
    targets = torch.as_tensor(targets)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)


def forward_ids(cfg, W, ids, rope_style="half"):
    """Logits (T, V) of one sequence."""
    return forward(cfg, W, [list(ids)], rope_style)[0]


# ---- tiny models of each family, as transformers writes them ------------------------------------------------
def tiny_config(arch, tied):
    """config.json of a 3-layer, width-24 GQA model of arch (Llama, Mistral, Qwen2, Qwen3) with its family's
    extra fields."""
    c = {"architectures": [arch], "model_type": {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
         "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}[arch],
         "vocab_size": 41, "hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 3,
         "num_attention_heads": 6, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 500.0,
         "max_position_embeddings": 128, "tie_word_embeddings": tied, "hidden_act": "silu",
         "initializer_range": 0.02, "use_cache": True, "transformers_version": "4.51.0", "bos_token_id": 1,
         "eos_token_id": 2, "rope_scaling": None, "attention_dropout": 0.0}
    if arch == "Qwen3ForCausalLM":
        c.update(head_dim=8, attention_bias=False, use_sliding_window=False, sliding_window=None,
                 max_window_layers=3, layer_types=["full_attention"] * 3)
    if arch == "Qwen2ForCausalLM":
        c.update(use_sliding_window=False, sliding_window=4096, max_window_layers=3)
    if arch == "MistralForCausalLM":
        c.update(sliding_window=None, head_dim=None)
    if arch == "LlamaForCausalLM":
        c.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
    return c


def tiny_weights(c, gen):
    """float64 weights for config c: matrices N(0, 0.3^2), norm gains 1 + N(0, 0.3^2); Qwen2 gets q/k/v biases,
    Qwen3 q/k norms; lm_head only when untied."""
    C, Fd, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    D = c.get("head_dim") or C // c["num_attention_heads"]
    QD, KD = c["num_attention_heads"] * D, c["num_key_value_heads"] * D
    arch = c["architectures"][0]
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64) * 0.3
    w = {"model.embed_tokens.weight": r(c["vocab_size"], C), "model.norm.weight": 1 + r(C)}
    for l in range(L):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = 1 + r(C)
        w[p + "self_attn.q_proj.weight"] = r(QD, C)
        w[p + "self_attn.k_proj.weight"] = r(KD, C)
        w[p + "self_attn.v_proj.weight"] = r(KD, C)
        w[p + "self_attn.o_proj.weight"] = r(C, QD)
        if arch == "Qwen2ForCausalLM":
            w[p + "self_attn.q_proj.bias"] = r(QD)
            w[p + "self_attn.k_proj.bias"] = r(KD)
            w[p + "self_attn.v_proj.bias"] = r(KD)
        if arch == "Qwen3ForCausalLM":
            w[p + "self_attn.q_norm.weight"] = 1 + r(D)
            w[p + "self_attn.k_norm.weight"] = 1 + r(D)
        w[p + "post_attention_layernorm.weight"] = 1 + r(C)
        w[p + "mlp.gate_proj.weight"] = r(Fd, C)
        w[p + "mlp.up_proj.weight"] = r(Fd, C)
        w[p + "mlp.down_proj.weight"] = r(C, Fd)
    if not c["tie_word_embeddings"]:
        w["lm_head.weight"] = r(c["vocab_size"], C)
    return w
