"""Running ONNX models with ONNX Runtime, the independent oracle.

Feeds a causal LM the way llq's ModelRunner does (one sequence, an all-ones
attention mask, positions after the cached tokens, empty caches to start)
so that logits can be compared step by step.
"""

import os
import shutil
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

_NP = {"tensor(int64)": np.int64, "tensor(int32)": np.int32,
       "tensor(float)": np.float32, "tensor(float16)": np.float16}


def exact_copy(path):
    """`path`, or a copy whose MatMulNBits nodes compute in float.

    With accuracy_level 4 ONNX Runtime quantizes the activations of
    MatMulNBits to int8 per block, an approximation of the operator's
    definition; the oracle wants the definition (accuracy_level 0). The copy
    sits in a temporary directory with copies of the external data (ONNX
    Runtime refuses data reached through links).
    """
    model = onnx.load(path, load_external_data=False)
    changed = False
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "MatMulNBits" and attr.name == "accuracy_level" and attr.i:
                attr.i = 0
                changed = True
    if not changed:
        return path
    tmp = tempfile.mkdtemp(prefix="llq-ort-")
    src = os.path.dirname(os.path.abspath(path))
    for f in os.listdir(src):
        if not f.endswith(".onnx"):
            shutil.copy(os.path.join(src, f), os.path.join(tmp, f))
    out = os.path.join(tmp, os.path.basename(path))
    onnx.save(model, out)
    return out


class OrtLM:
    def __init__(self, path, head_dim=None, exact=True):
        if exact:
            path = exact_copy(path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = 2
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.inputs = self.sess.get_inputs()
        self.outputs = [o.name for o in self.sess.get_outputs()]
        self.head_dim = head_dim
        self.reset()

    def reset(self):
        self.past = 0
        self.cache = {}
        for i in self.inputs:
            if i.name.startswith("past"):
                shape = [1 if d == 0 else (0 if d == 2 else i.shape[d])
                         for d in range(len(i.shape))]
                if not isinstance(shape[3], int):
                    shape[3] = self.head_dim
                self.cache[i.name] = np.zeros(shape, _NP[i.type])

    def forward(self, tokens):
        n = len(tokens)
        total = self.past + n
        feed = {}
        for i in self.inputs:
            t = _NP.get(i.type)
            if i.name == "input_ids":
                feed[i.name] = np.array([tokens], t)
            elif i.name == "attention_mask":
                feed[i.name] = np.ones((1, total), t)
            elif i.name == "position_ids":
                feed[i.name] = np.arange(self.past, total, dtype=t)[None, :]
            elif i.name.startswith("past"):
                feed[i.name] = self.cache[i.name]
            else:
                raise ValueError(f"unknown input {i.name}")
        out = dict(zip(self.outputs, self.sess.run(self.outputs, feed)))
        if self.cache:
            for name in self.cache:
                self.cache[name] = out[name.replace("past_key_values", "present")]
            self.past = total
        return out["logits"]
