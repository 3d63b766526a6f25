"""The virtual environment a benchmark's peers (Optuna, Ray Tune, omikuji, ...) run in: created and
filled from PyPI on first use, reused while its imports work. The peers are never needed by the
build or the tests, so they stay out of the project's own .venv.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ensure_peer_venv(venv, packages, imports, see_project_venv=False, label="compare"):
    """The Python of `venv` once `import <imports>` works there, installing `packages` if it does
    not. With `see_project_venv`, a .pth file lets the venv import from the project's .venv too
    (for packages that are there already but must not be reinstalled with other pins)."""
    venv = Path(venv)
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", f"import {imports}"], capture_output=True).returncode == 0:
        return py
    print(f"{label}: installing {and_list(packages)} into {venv}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if see_project_venv:
        ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        project = ROOT / ".venv" / "lib" / ver / "site-packages"
        (venv / "lib" / ver / "site-packages" / "zz-project-venv.pth").write_text(f"{project}\n")
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages], check=True)
    return py


def and_list(items):
    """`a`, `a and b`, `a, b and c`."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
