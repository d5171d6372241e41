# -*- Python -*- lit configuration for the llq test suite.

import os
import shutil

import lit.formats
from lit.llvm import llvm_config

config.name = "LLQ"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes_dirs = ["Fixtures"]
config.excludes = ["Inputs", "Fixtures", "CMakeLists.txt", "README.md",
                   "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.llq_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%llq_src", config.llq_src_root))

# Progress lines are for people; keep them out of checked output.
config.environment["LLQ_NO_PROGRESS"] = "1"
config.environment["PYTHONPATH"] = os.path.join(config.llq_src_root, "python")

llvm_config.with_system_environment(["HOME", "TMPDIR"])
llvm_config.use_default_substitutions()

tool_dirs = [config.llq_tools_dir, config.llvm_tools_dir]
# `not` and `count` at the start of a command are found on PATH.
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.add_tool_substitutions(["llq-opt", "llq-import", "llq-run", "llq-compile"],
                                   tool_dirs)

# Assembling kernels into cubins needs the CUDA toolkit's ptxas (not a GPU).
if (os.environ.get("LLQ_PTXAS") or shutil.which("ptxas")
        or os.path.exists("/usr/local/cuda/bin/ptxas")):
    config.available_features.add("ptxas")

# Tests that run kernels on a GPU declare REQUIRES: cuda: a CUDA driver that
# initializes and finds a device.
try:
    import ctypes
    cuda = ctypes.CDLL("libcuda.so.1")
    count = ctypes.c_int(0)
    if cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 \
            and count.value > 0:
        config.available_features.add("cuda")
except OSError:
    pass

# Tests that need the Python reference stack (numpy) declare REQUIRES: numpy.
try:
    import subprocess
    subprocess.run([config.python_executable, "-c", "import numpy"],
                   check=True, capture_output=True)
    config.available_features.add("numpy")
except Exception:
    pass
