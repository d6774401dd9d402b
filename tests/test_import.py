"""``import audiovis`` is light: it imports no heavy dependency and reads no file of the package's data.

Checked in a fresh interpreter (this process has long imported torch): ``sys.modules`` after the import,
and every file opened during it (an audit hook sees each Python-level ``open``; native readers such as
safetensors' or libsndfile's would need their modules imported, which the module check forbids).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# torch & co. are slow to import; safetensors and soundfile read files natively (unseen by audit hooks)
HEAVY = ("torch", "torchaudio", "timm", "bokeh", "anywidget", "transformers", "safetensors", "soundfile")

PROBE = r"""
import json, os, sys

opened = []

def audit(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.append(os.path.abspath(os.fsdecode(args[0])))

sys.addaudithook(audit)
import audiovis

print(json.dumps({"package": os.path.dirname(os.path.abspath(audiovis.__file__)),
                  "opened": opened, "modules": sorted(sys.modules)}))
"""


def _import_in_fresh_interpreter(cwd: Path) -> dict:
    # this checkout's package (after any PYTHONPATH the caller set), from a neutral working directory
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(Path(__file__).parent.parent)]))
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_loads_no_heavy_module_and_reads_no_package_data(tmp_path):
    probe = _import_in_fresh_interpreter(tmp_path)
    heavy = sorted({m.split(".")[0] for m in probe["modules"]} & set(HEAVY))
    assert not heavy, f"import audiovis imported {heavy}"
    package = Path(probe["package"])
    assert (package / "__init__.py").is_file()
    data = sorted(p for p in probe["opened"]
                  if Path(p).is_relative_to(package) and Path(p).suffix not in (".py", ".pyc"))
    assert not data, f"import audiovis read package data: {data}"
    # the audit hook did see the import itself, so an empty list above means something
    assert str(package / "__init__.py") in probe["opened"]


def test_every_lazy_name_resolves():
    import audiovis

    for name in audiovis.__all__:
        assert getattr(audiovis, name) is not None, name
