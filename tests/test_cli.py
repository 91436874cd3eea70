"""The command line starts without importing torch (so `--help` answers at once) and lists its commands."""

import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).parent / "seam-harness")


def test_cli_module_does_not_import_torch():
    code = "import sys, harness.cli; print('torch' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"


def test_help_lists_the_commands():
    completed = subprocess.run([CLI, "--help"], capture_output=True, text=True, check=True)
    for command in ("make-round", "run", "model", "aggregate"):
        assert command in completed.stdout


def test_make_round_rejects_an_unknown_round_clearly(tmp_path):
    completed = subprocess.run(
        [CLI, "make-round", "--round", "8", "--output_dir", str(tmp_path)], capture_output=True, text=True
    )
    assert completed.returncode != 0
    assert "makes rounds 3 to 7, not 8" in completed.stderr and "Traceback" not in completed.stderr
    assert not any(tmp_path.iterdir())
