"""Installing and importing epochstream never pulls in a framework: each integration imports its own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

FRAMEWORKS = ("lightning", "pytorch_lightning", "transformers", "keras", "accelerate", "torch")


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_the_producer_and_the_integrations_package_import_no_framework():
    loaded = modules_after("import producer, producer.integrations, producer.integrations.names, "
                           "producer.integrations.pending, producer.integrations.runs")
    assert {m.split(".")[0] for m in loaded} & set(FRAMEWORKS) == set()



@pytest.mark.parametrize(("module", "framework", "extra"), [
    ("lightning", "lightning", "lightning"), ("transformers", "transformers", "transformers"),
    ("keras", "keras", "keras")])
def test_an_integration_without_its_framework_says_which_extra_to_install(module, framework, extra):
    probe = (f"import sys; sys.modules[{framework!r}] = None\n"  # as if it were not installed
             f"import producer.integrations.{module}")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert f"ImportError: producer.integrations.{module} needs" in out.stderr
    assert f"pip install 'epochstream[{extra}]'" in out.stderr
