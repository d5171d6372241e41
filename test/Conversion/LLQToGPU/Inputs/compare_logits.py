"""compare_logits.py A B TOL: the largest difference of two --print-logits
outputs relative to the largest |logit| of A must stay below TOL."""
import sys

import numpy as np

a, b = (np.loadtxt(p, ndmin=2) for p in sys.argv[1:3])
assert a.shape == b.shape, (a.shape, b.shape)
err = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
print(f"relative difference {err:.2e}")
sys.exit(0 if err < float(sys.argv[3]) else 1)
