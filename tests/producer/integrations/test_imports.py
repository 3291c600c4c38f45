"""Installing and importing epochstream never pulls in a framework: each integration imports its own."""

from __future__ import annotations

import json
import subprocess
import sys

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

