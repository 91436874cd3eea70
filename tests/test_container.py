"""singularity/seam.def: the sections a TrojAI-style image needs, and its command lines run on the host."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY
from test_mitigation_api import mitigation_dataset
from test_model_entrypoint import server_folder

from adapters.common import discover_models
from adapters.image import read_dataset_images
from harness.model_io import load_model
from harness.records import FLAGGED
from harness.training import model_logits

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
    env.pop("SEAM_HARNESS_KERNELS", None)  # the container's defaults, whatever the developer's shell exports
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
    assert record["model_id"] == "active" and record["status"] in ("ok", *FLAGGED)
    assert record["method_config"]["forget_max_epochs"] == 2  # the flags were passed through


def test_self_check_of_the_test_section():
    completed = host_shell(sections(DEF_FILE.read_text())["%test"])
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith("self-check: ok")
    assert "CPU kernels native" in completed.stdout  # the switch is off unless the environment sets it


# --- A real Apptainer build and run ------------------------------------------------------------------------
# No registry is reachable from CI, so docker://pytorch/pytorch cannot be pulled. The test builds instead
# from a local base: an almost empty rootfs; the host's /usr and the test's Python are bound in, read-only.
# Everything that makes the image seam-harness (%files, %environment, %runscript, %apprun, %test) is taken
# unchanged from singularity/seam.def, so a broken seam.def breaks this test.

INSTALL_SCRIPT = ROOT / ".ci" / "apptainer_install.sh"
APPTAINER_PREFIX = Path(os.environ.get("APPTAINER_PREFIX", "/tmp/seam-apptainer"))
IMAGE_CODE = "/opt/seam-harness"  # where seam.def's %files puts the package


@pytest.fixture(scope="module")
def apptainer() -> Path:
    """apptainer on PATH, else installed by .ci/apptainer_install.sh (needs root and apt-get), else skip."""
    found = shutil.which("apptainer")
    if found:
        return Path(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        reason = "Apptainer is not installed, and installing it needs root and apt-get"
        print(f"\nskipping: {reason}")
        pytest.skip(reason)
    started = time.monotonic()
    completed = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        capture_output=True,
        text=True,
        env={**os.environ, "APPTAINER_PREFIX": str(APPTAINER_PREFIX)},
        timeout=600,
    )
    if completed.returncode != 0:
        last_lines = " | ".join(completed.stderr.strip().splitlines()[-3:])
        reason = f"{INSTALL_SCRIPT.name} failed (exit {completed.returncode}): {last_lines}"
        print(f"\nskipping: {reason}")
        pytest.skip(reason)
    print(f"\napptainer: {completed.stdout.strip()} ({time.monotonic() - started:.1f} s)")
    return APPTAINER_PREFIX / "usr" / "bin" / "apptainer"


def raw_sections(text: str) -> list[tuple[str, str]]:
    """[(name, body as written)] of a definition file, "header" first; joined they give the file back."""
    parts, name, body = [], "header", []
    for line in text.splitlines(keepends=True):
        if re.match(r"^%\w+", line):
            parts.append((name, "".join(body)))
            name, body = line.strip(), []
        else:
            body.append(line)
    parts.append((name, "".join(body)))
    return parts


def host_python_dirs() -> list[Path]:
    """Host folders the container needs for this test's Python and torch: /usr, venv, base interpreter."""
    needed = [Path("/usr")]
    for top in ("/bin", "/lib", "/lib64", "/sbin"):  # real folders on a host without merged /usr
        if Path(top).is_dir() and not Path(top).is_symlink():
            needed.append(Path(top))
    # as written (PATH in %environment uses it) and resolved (where the venv's python link may point)
    for prefix in (Path(sys.prefix), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()):
        if not any(prefix.is_relative_to(folder) for folder in needed):
            needed.append(prefix)
    return needed


def local_rootfs(destination: Path, mount_points: list[Path]) -> Path:
    """A base with nothing but the folders the binds land on and the host's /bin-style links."""
    for folder in ("etc", "tmp", "var/tmp", "proc", "sys", "dev", "root", "home", "opt"):
        (destination / folder).mkdir(parents=True)
    for top in ("bin", "lib", "lib64", "sbin"):  # merged /usr: the same links, so /bin/sh resolves into /usr
        if Path("/", top).is_symlink():
            (destination / top).symlink_to(os.readlink(Path("/", top)))
    for mount_point in mount_points:
        (destination / mount_point.relative_to("/")).mkdir(parents=True, exist_ok=True)
    (destination / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (destination / "etc" / "group").write_text("root:x:0:\n")
    return destination


def local_definition(def_text: str, base: Path) -> str:
    """seam.def with a localimage header and a %post that needs no network; every other section unchanged."""
    venv_bin = Path(sys.executable).parent
    derived = [f"Bootstrap: localimage\nFrom: {base}\n\n"]
    for name, body in raw_sections(def_text)[1:]:
        if name == "%post":
            # The real %post pip-installs into the base image's Python. Here that Python is the host's, bound
            # read-only, so it byte-compiles the copy instead: still code run in the image, under --fakeroot.
            packages = f"{IMAGE_CODE}/harness {IMAGE_CODE}/adapters"
            body = f"    {venv_bin / 'python'} -m compileall -q {packages}\n\n"
        elif name == "%environment":
            # The host venv supplies the interpreter and torch; PYTHONPATH makes the image's copy win over the
            # venv's editable install of the working tree
            exports = f"    export PATH={venv_bin}:$PATH\n    export PYTHONPATH={IMAGE_CODE}\n"
            body = f"{body.rstrip()}\n{exports}\n"
        derived.append(f"{name}\n{body}")
    return "".join(derived)


def timed(command: list, **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    completed = subprocess.run(list(map(str, command)), capture_output=True, text=True, **kwargs)
    return completed, time.monotonic() - started


def test_local_definition_keeps_the_image_sections(tmp_path):
    original = sections(DEF_FILE.read_text())
    derived = sections(local_definition(DEF_FILE.read_text(), tmp_path))
    assert derived["header"] == f"Bootstrap: localimage\nFrom: {tmp_path}"
    kept = [name for name in original if name not in ("header", "%post", "%environment")]
    assert {"%files", "%runscript", "%test", "%apprun run", "%apprun mitigate"} <= set(kept)
    assert all(derived[name] == original[name] for name in kept)
    assert derived["%environment"].startswith(original["%environment"])
    assert f"export PYTHONPATH={IMAGE_CODE}" in derived["%environment"]
    (_, header), *rest = raw_sections(DEF_FILE.read_text())  # the splitter loses nothing it passes on
    assert header + "".join(f"{name}\n{body}" for name, body in rest) == DEF_FILE.read_text()


def test_apptainer_builds_and_runs_the_image(apptainer, tiny_round3, tmp_path):
    host_dirs = host_python_dirs()
    python_binds = [arg for folder in host_dirs for arg in ("--bind", f"{folder}:{folder}:ro")]
    base = local_rootfs(tmp_path / "rootfs", host_dirs)
    definition = tmp_path / "seam-local.def"
    definition.write_text(local_definition(DEF_FILE.read_text(), base))
    sandbox = tmp_path / "seam.sandbox"

    # %post needs --fakeroot (root here lacks CAP_SYS_RESOURCE) and the binds, which build applies to %post
    # only; hence --notest, and %test runs below through `apptainer test` with the binds
    fakeroot = ["--fakeroot"] if "%post" in sections(definition.read_text()) else []
    build, build_s = timed(
        [apptainer, "build", *fakeroot, "--notest", "--sandbox", *python_binds, sandbox, definition], cwd=ROOT
    )
    print(f"\napptainer build --sandbox: {build_s:.1f} s")
    assert build.returncode == 0, build.stderr + build.stdout
    assert (sandbox / IMAGE_CODE.lstrip("/") / "harness" / "cli.py").is_file()  # %files copied the package
    assert list((sandbox / IMAGE_CODE.lstrip("/") / "harness" / "__pycache__").glob("cli.*.pyc"))  # %post ran

    # No --contain: it mounts a fresh /tmp, which hides the binds when the checkout (and so the venv) lives
    # under /tmp, as a CI clone may. --no-home keeps the image's /root, where a pyenv interpreter's mount
    # point lives; --cleanenv: PATH and PYTHONPATH come from %environment alone
    isolation = ["--no-home", "--cleanenv", *python_binds]
    where, _ = timed(
        [apptainer, "exec", *isolation, sandbox, "python", "-c", "import harness; print(harness.__file__)"],
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(f"{IMAGE_CODE}/"), where.stdout  # the image's copy, not the tree's

    folder = server_folder(discover_models(tiny_round3)[0], tmp_path / "active")
    (tmp_path / "result").mkdir()
    (tmp_path / "scratch").mkdir()
    data_binds = [
        *("--bind", f"{folder}:/model/active:ro"),
        *("--bind", f"{tmp_path / 'result'}:/result"),
        *("--bind", f"{tmp_path / 'scratch'}:/scratch"),
    ]
    command = [
        apptainer, "run", *isolation, *data_binds, sandbox,
        "--model_filepath", "/model/active/model.pt", "--result_filepath", "/result/result.json",
        "--scratch_dirpath", "/scratch", "--examples_dirpath", "/model/active/example_data",
        "--seam.forget_max_epochs", "2", "--seam.recover_max_epochs", "2",
    ]  # fmt: skip
    run, run_s = timed(command, cwd=tmp_path)
    print(f"apptainer run (runscript, SEAM 2+2 epochs): {run_s:.1f} s")
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "result" / "result.json").read_text())
    assert record["model_id"] == "active" and record["model_dir"] == "/model/active"  # the container's view
    assert record["status"] in ("ok", *FLAGGED)
    seam_config = record["method_config"]  # the flags reached SEAM through the runscript
    assert seam_config["forget_max_epochs"] == 2 and seam_config["recover_max_epochs"] == 2
    assert 0 < record["forget_epochs"] <= 2

    self_check, test_s = timed([apptainer, "test", *isolation, sandbox], cwd=tmp_path)
    print(f"apptainer test (%test, self-check): {test_s:.1f} s")
    assert self_check.returncode == 0, self_check.stderr
    assert self_check.stdout.strip().endswith("self-check: ok")

    # --app test (2024 mitigation API): the container writes the model's logits for a dataset's test split
    dataset = mitigation_dataset(discover_models(tiny_round3)[0], tmp_path / "dataset")
    (tmp_path / "app_out").mkdir()
    command = [
        apptainer, "run", "--app", "test", *isolation,
        "--bind", f"{folder}:/model/active:ro", "--bind", f"{dataset}:/dataset:ro",
        "--bind", f"{tmp_path / 'app_out'}:/output", sandbox,
        "--model_filepath", "/model/active/model.pt", "--dataset_dirpath", "/dataset",
        "--output_dirpath", "/output", "--device", "cpu",
    ]  # fmt: skip
    app, app_s = timed(command, cwd=tmp_path)
    print(f"apptainer run --app test: {app_s:.1f} s")
    assert app.returncode == 0, app.stderr
    logits = json.loads((tmp_path / "app_out" / "results.json").read_text())
    test_images = read_dataset_images(dataset / "test", TINY["cnn_img_size_pixels"], labelled=False)
    assert sorted(logits) == sorted(test_images.names)
    expected = model_logits(load_model(folder / "model.pt"), test_images.inputs)  # same model, on the host
    got = torch.tensor([logits[name] for name in test_images.names])
    assert torch.allclose(got, expected, atol=1e-5)
