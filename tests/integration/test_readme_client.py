"""The README's Python client example, run as it is written against the running bus."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests

from bus.settings import PROJECT_ROOT
from bus.tooling.devstack import DEMO_AGENCY, DevStack

pytestmark = pytest.mark.integration


def readme_example() -> str:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Discovery and the Python client", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_readme_client_example_runs_against_the_bus(stack: DevStack) -> None:
    [person] = requests.get(f"{stack.sandbox_url}/_sandbox/sample?n=1", timeout=10).json()
    done = subprocess.run(
        [sys.executable, "-c", readme_example()],
        env=dict(
            os.environ,
            TTHC_BOOTSTRAP=stack.bootstrap_servers,
            TTHC_API_KEY=stack.keys.agencies[DEMO_AGENCY],
            TTHC_SUBJECT=person,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    allowed, looked_up, refused = done.stdout.strip().splitlines()
    assert "population.identity" in allowed
    assert looked_up.startswith("complete ")
    assert refused.startswith("invalid lookup request: ")
    assert "is asked by a personal id (subject.personal_id)" in refused, refused
