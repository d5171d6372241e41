"""Builds LLaMA-architecture ONNX graphs from weights, without torch.

The graph is the computation of transformers' LlamaForCausalLM written in
standard ONNX ops (opset 18): token embedding, RMSNorm, rotary embedding
(with LLaMA3 frequency scaling), grouped-query attention over a KV cache,
SwiGLU and the LM head. Weights keep their Hugging Face names and layouts
(linear weights out x in, used through Transpose) and are stored as
external data, so multi-GB models work. Used to convert checkpoints (GGUF)
and to make benchmark models of any size.

Inputs: input_ids [b, s], attention_mask [b, past + s], position_ids
[b, s], past_key_values.{i}.key/value [b, kv_heads, past, head_dim].
Outputs: logits [b, s, vocab], present.{i}.key/value.
"""

import math
import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


@dataclass
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict = field(default_factory=dict)  # llama3: factor, ...
    tie_word_embeddings: bool = False
    head_dim: int = 0

    def __post_init__(self):
        if not self.head_dim:
            self.head_dim = self.hidden_size // self.num_attention_heads


def inv_freq(cfg):
    """RoPE inverse frequencies, with LLaMA3's scaling when configured."""
    d = cfg.head_dim
    freqs = 1.0 / (cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    s = cfg.rope_scaling or {}
    if s.get("rope_type") == "llama3":
        factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        old = s["original_max_position_embeddings"]
        low_wl, high_wl = old / low, old / high
        wavelen = 2 * math.pi / freqs
        smooth = (old / wavelen - low) / (high - low)
        scaled = np.where(wavelen > low_wl, freqs / factor, freqs)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        is_mid = (wavelen >= high_wl) & (wavelen <= low_wl)
        freqs = np.where(is_mid, mid, scaled)
    return freqs.astype(np.float32)


class _Graph:
    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        outs = [self.name(hint or op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs,
                                           name=self.name("node_" + op_type), **attrs))
        return outs[0] if outputs == 1 else outs

    def const(self, value, dtype=np.int64, hint="const"):
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name


def _linear(g, x, weight_name):
    wt = g.op("Transpose", [weight_name], perm=[1, 0])
    return g.op("MatMul", [x, wt])


def _rms_norm(g, x, weight_name, eps):
    sq = g.op("Pow", [x, g.const(2.0, np.float32)])
    mean = g.op("ReduceMean", [sq, g.const([-1])], keepdims=1)
    rt = g.op("Sqrt", [g.op("Add", [mean, g.const(eps, np.float32)])])
    normed = g.op("Mul", [x, g.op("Reciprocal", [rt])])
    return g.op("Mul", [weight_name, normed])


def _rotate(g, x, cos, sin, half):
    x1 = g.op("Slice", [x, g.const([0]), g.const([half]), g.const([-1])])
    x2 = g.op("Slice", [x, g.const([half]), g.const([2**62]), g.const([-1])])
    rot = g.op("Concat", [g.op("Neg", [x2]), x1], axis=-1)
    return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rot, sin])])


def build(cfg, weights, path, data_name=None):
    """Writes the model to `path` with weights in `path`.data.

    `weights` maps Hugging Face parameter names to float32 arrays.
    """
    g = _Graph()
    h, kvh, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    rep = h // kvh
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
              helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                             ["batch", "seq", cfg.vocab_size])]
    x = g.op("Gather", ["model.embed_tokens.weight", "input_ids"], axis=0)

    # RoPE tables for the given positions: [b, 1, s, d] with equal halves.
    pos = g.op("Cast", [g.op("Unsqueeze", ["position_ids", g.const([-1])])], to=TensorProto.FLOAT)
    freqs = g.op("Mul", [pos, g.const(inv_freq(cfg), np.float32, "inv_freq")])
    emb = g.op("Concat", [freqs, freqs], axis=-1)
    cos = g.op("Unsqueeze", [g.op("Cos", [emb]), g.const([1])])
    sin = g.op("Unsqueeze", [g.op("Sin", [emb]), g.const([1])])

    # Additive mask [b, 1, s, total]: causal after the cached tokens and
    # zero where attention_mask is 0.
    seq = g.op("Shape", ["input_ids"], start=1, end=2)
    total = g.op("Shape", ["attention_mask"], start=1, end=2)
    past = g.op("Sub", [total, seq])
    zero, one = g.const(0), g.const(1)
    q_pos = g.op("Range", [g.op("Squeeze", [past]), g.op("Squeeze", [total]), one])
    k_pos = g.op("Range", [zero, g.op("Squeeze", [total]), one])
    causal = g.op("LessOrEqual", [g.op("Unsqueeze", [k_pos, g.const([0])]),
                                  g.op("Unsqueeze", [q_pos, g.const([1])])])
    keep = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const([1, 2])])], to=TensorProto.BOOL)
    allowed = g.op("And", [causal, keep])
    mask = g.op("Where", [allowed, g.const(0.0, np.float32), g.const(-np.inf, np.float32)])

    heads_shape = g.const([0, 0, h, d])
    kv_shape = g.const([0, 0, kvh, d])
    merge_shape = g.const([0, 0, h * d])
    scale = g.const(1.0 / math.sqrt(d), np.float32)
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        pk, pv = f"past_key_values.{i}.key", f"past_key_values.{i}.value"
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", kvh, "past", d])
                   for n in (pk, pv)]
        hn = _rms_norm(g, x, p + "input_layernorm.weight", cfg.rms_norm_eps)
        q = g.op("Transpose", [g.op("Reshape", [_linear(g, hn, p + "self_attn.q_proj.weight"), heads_shape])],
                 perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [_linear(g, hn, p + "self_attn.k_proj.weight"), kv_shape])],
                 perm=[0, 2, 1, 3])
        v = g.op("Transpose", [g.op("Reshape", [_linear(g, hn, p + "self_attn.v_proj.weight"), kv_shape])],
                 perm=[0, 2, 1, 3])
        q, k = _rotate(g, q, cos, sin, d // 2), _rotate(g, k, cos, sin, d // 2)
        k_all = g.op("Concat", [pk, k], axis=2)
        v_all = g.op("Concat", [pv, v], axis=2)
        g.nodes.append(helper.make_node("Identity", [k_all], [f"present.{i}.key"]))
        g.nodes.append(helper.make_node("Identity", [v_all], [f"present.{i}.value"]))
        outputs += [helper.make_tensor_value_info(f"present.{i}.{n}", TensorProto.FLOAT,
                                                  ["batch", kvh, "total", d]) for n in ("key", "value")]
        if rep > 1:  # repeat_kv
            rep_shape = g.op("Concat", [g.op("Shape", [k_all], end=2), g.const([rep]),
                                        g.op("Shape", [k_all], start=2)], axis=0)
            flat = g.const([0, h, -1, d])
            k_all = g.op("Reshape", [g.op("Expand", [g.op("Unsqueeze", [k_all, g.const([2])]), rep_shape]), flat])
            v_all = g.op("Reshape", [g.op("Expand", [g.op("Unsqueeze", [v_all, g.const([2])]), rep_shape]), flat])
        scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k_all], perm=[0, 1, 3, 2])]), scale])
        probs = g.op("Softmax", [g.op("Add", [scores, mask])], axis=-1)
        attn = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v_all])], perm=[0, 2, 1, 3]),
                                merge_shape])
        x = g.op("Add", [x, _linear(g, attn, p + "self_attn.o_proj.weight")])
        hn = _rms_norm(g, x, p + "post_attention_layernorm.weight", cfg.rms_norm_eps)
        gate = _linear(g, hn, p + "mlp.gate_proj.weight")
        act = g.op("Mul", [gate, g.op("Sigmoid", [gate])])
        up = _linear(g, hn, p + "mlp.up_proj.weight")
        x = g.op("Add", [x, _linear(g, g.op("Mul", [act, up]), p + "mlp.down_proj.weight")])
    x = _rms_norm(g, x, "model.norm.weight", cfg.rms_norm_eps)
    head = "model.embed_tokens.weight" if cfg.tie_word_embeddings else "lm_head.weight"
    g.nodes.append(helper.make_node("MatMul", [x, g.op("Transpose", [head], perm=[1, 0])], ["logits"],
                                    name="node_lm_head"))

    data_name = data_name or os.path.basename(path) + ".data"
    data_path = os.path.join(os.path.dirname(os.path.abspath(path)), data_name)
    inits = list(g.inits)
    offset = 0
    with open(data_path, "wb") as f:
        for name in sorted(weights):
            arr = np.ascontiguousarray(weights[name], dtype=np.float32)
            t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(arr.shape))
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", str(offset)),
                               ("length", str(arr.nbytes))):
                e = t.external_data.add()
                e.key, e.value = key, value
            f.write(arr.tobytes())
            pad = -arr.nbytes % 64
            f.write(b"\0" * pad)
            offset += arr.nbytes + pad
            inits.append(t)
    graph = helper.make_graph(g.nodes, "llama", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="llq.onnx_llama")
    model.ir_version = 9
    onnx.save(model, path)


def parameter_shapes(cfg):
    """Hugging Face names and shapes of a LlamaForCausalLM's parameters."""
    h, i, d = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    shapes = {"model.embed_tokens.weight": (cfg.vocab_size, h), "model.norm.weight": (h,)}
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (cfg.vocab_size, h)
    for n in range(cfg.num_hidden_layers):
        p = f"model.layers.{n}."
        shapes.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (cfg.num_attention_heads * d, h),
            p + "self_attn.k_proj.weight": (cfg.num_key_value_heads * d, h),
            p + "self_attn.v_proj.weight": (cfg.num_key_value_heads * d, h),
            p + "self_attn.o_proj.weight": (h, cfg.num_attention_heads * d),
            p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i)})
    return shapes


def random_weights(cfg, seed=0):
    """LLaMA-like random weights (1/sqrt(fan_in) scale, norms near 1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in parameter_shapes(cfg).items():
        if len(shape) == 1:
            out[name] = (1.0 + 0.05 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[name] = (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(np.float32)
    return out
