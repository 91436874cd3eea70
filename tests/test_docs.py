"""The README stays short and current, and CI runs exactly its test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*?)\n```", readme)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_readme_is_short_and_speaks_of_the_software_as_it_is():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 260
    texts = [readme] + [p.read_text() for p in (ROOT / "docs").glob("*.md")]
    texts += [p.read_text() for p in (ROOT / "round_configs").glob("*.yaml")]
    for text in texts:
        assert not re.search(r"sessio[n] [0-9]|in sessio[n]|sessio[n]s? [0-9]", text, re.IGNORECASE)
