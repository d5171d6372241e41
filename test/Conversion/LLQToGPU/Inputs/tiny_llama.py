"""Writes the small LLaMA of the whole-model tests: tiny_llama.py OUT.onnx"""
import sys

from llq import onnx_llama

cfg = onnx_llama.LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=192,
                             num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, tie_word_embeddings=True)
onnx_llama.build(cfg, onnx_llama.random_weights(cfg, seed=3), sys.argv[1])
