"""singularity/seam.def: the sections a TrojAI-style image needs, and its command lines run on the host."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_model_entrypoint import server_folder

from adapters.common import discover_models

ROOT = Path(__file__).resolve().parent.parent
DEF_FILE = ROOT / "singularity" / "seam.def"
VENV_BIN = str(Path(sys.executable).parent)


def sections(text: str) -> dict[str, str]:
    """{"header": ..., "%runscript": body, "%apprun run": body, ...} of a definition file."""
    parts, name, lines = {}, "header", []
    for line in text.splitlines():
        if re.match(r"^%\w+", line):
            parts[name] = "\n".join(lines).strip()
            name, lines = line.strip(), []
        else:
            lines.append(line)
    parts[name] = "\n".join(lines).strip()
    return parts


def host_shell(script: str, *args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a section's body with bash, as the container would, with the venv's seam-harness on PATH."""
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    command = ["bash", "-c", script, "runscript", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)


def test_definition_has_the_required_sections():
    parts = sections(DEF_FILE.read_text())
    header = dict(line.split(":", 1) for line in parts["header"].splitlines() if ":" in line)
    assert header["Bootstrap"].strip() == "docker" and "pytorch/pytorch" in header["From"]
    for name in ("%labels", "%help", "%files", "%post", "%runscript", "%test"):
        assert parts.get(name), f"{name} missing or empty"
    for app in ("run", "mitigate", "test"):
        assert parts[f"%apprun {app}"] == f'exec seam-harness {app} "$@"'
    assert parts["%runscript"] == 'exec seam-harness model "$@"'
    for line in parts["%files"].splitlines():  # every file the image copies exists in the repository
        source, destination = line.split()
        assert (ROOT / source).exists(), source
        assert destination.startswith("/opt/seam-harness/")
    assert "pip install" in parts["%post"] and "/opt/seam-harness" in parts["%post"]


def test_runscript_command_line_runs_the_entrypoint(tiny_round3, tmp_path):
    folder = server_folder(discover_models(tiny_round3)[0], tmp_path / "active")
    runscript = sections(DEF_FILE.read_text())["%runscript"]
    completed = host_shell(
        runscript, "--model_filepath", folder / "model.pt", "--result_filepath", tmp_path / "result.json",
        "--scratch_dirpath", tmp_path / "scratch", "--examples_dirpath", folder / "example_data",
        "--seam.forget_max_epochs", "2", "--seam.recover_max_epochs", "2",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["model_id"] == "active" and record["status"] in (
        "ok",
        "recovery_failed",
        "forget_incomplete",
    )
    assert record["seam_config"]["forget_max_epochs"] == 2  # the flags were passed through


def test_self_check_of_the_test_section():
    completed = host_shell(sections(DEF_FILE.read_text())["%test"])
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith("self-check: ok")


def test_apptainer_builds_and_runs_the_image(tmp_path):
    runtime = shutil.which("apptainer") or shutil.which("singularity")
    if runtime is None:
        pytest.skip("Apptainer/Singularity is not installed here; singularity/README.md shows how to build")
    # A real build pulls the PyTorch base image; that needs a registry this machine may not reach.
    pytest.skip(f"{runtime} found, but building from docker://pytorch/pytorch needs network access")
