import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))


def tool(name):
    build = os.environ.get("LLQ_BUILD_DIR", os.path.join(ROOT, "build"))
    path = os.path.join(build, "bin", name)
    if not os.path.exists(path):
        path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not built; run scripts/setup.sh first")
    return path


@pytest.fixture(scope="session")
def llq_opt():
    return tool("llq-opt")


@pytest.fixture(scope="session")
def llq_import():
    return tool("llq-import")


@pytest.fixture(scope="session")
def llq_run():
    return tool("llq-run")


@pytest.fixture(scope="session")
def llq_compile():
    return tool("llq-compile")
