"""Checks that this interpreter is the project's virtual environment and that
it holds what a pinned requirements file asks for.

    python -I scripts/venv_check.py REQUIREMENTS.txt [--modules M ...]
    python3 -I scripts/venv_check.py --hash REQUIREMENTS.txt

Exits 1, naming each problem, unless
* the interpreter runs inside a venv that does not see the system's
  site-packages, with no user site and no PYTHONPATH (run it with -I);
* every `name==version` pin of the file (and of the files it includes with
  `-r`/`-c`) is installed at that version, from inside the venv;
* every module named after --modules imports from inside the venv.

scripts/lib.sh (ensure_venv) uses it to decide whether to run pip, and
scripts/test.sh as a guard: the Python tests must not pass thanks to packages
that came from outside the project. `--hash` prints one SHA-256 over the file
and its includes, the stamp ensure_venv compares. Standard library only.
"""

import hashlib
import importlib.metadata as md
import importlib.util
import re
import site
import sys
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


def files(req: Path) -> list[Path]:
    """REQ and every file it includes with -r/-c, in order."""
    out = [req]
    for line in req.read_text().splitlines():
        m = re.match(r"^-[rc]\s*(\S+)", line.strip())
        if m:
            out += files(req.parent / m.group(1))
    return out


def pins(req: Path) -> dict[str, str]:
    found = {}
    for f in files(req):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            m = PIN.match(line)
            if not m:
                sys.exit(f"{f}:{n}: not an exact pin (name==version): {line!r}")
            found[canonical(m.group(1))] = m.group(3)
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def inside(path: str | Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(sys.prefix).resolve())


def problems(req: Path, modules: list[str]) -> list[str]:
    out = []
    if sys.prefix == sys.base_prefix:
        out.append(f"{sys.executable} is not a virtual environment")
    if not sys.flags.isolated or site.ENABLE_USER_SITE:
        out.append("run with python -I (no user site, no PYTHONPATH)")
    outside = [p for p in sys.path if "-packages" in p and not inside(p)]
    if outside:
        out.append(f"site-packages outside the venv are on sys.path: {outside}")
    for name, want in pins(req).items():
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            out.append(f"{name}=={want}: not installed")
            continue
        if dist.version != want:
            out.append(f"{name}=={want}: {dist.version} is installed")
        elif not inside(dist.locate_file("")):
            out.append(f"{name}: installed outside the venv, at {dist.locate_file('')}")
    for m in modules:
        spec = importlib.util.find_spec(m)
        if spec is None or spec.origin is None:
            out.append(f"module {m}: not found")
        elif not inside(spec.origin):
            out.append(f"module {m}: imports from {spec.origin}, outside the venv")
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["--hash"] and len(argv) == 2:
        h = hashlib.sha256()
        for f in files(Path(argv[1])):
            h.update(f.read_bytes())
        print(h.hexdigest())
        return 0
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    req, modules = Path(argv[0]), []
    if len(argv) > 1:
        if argv[1] != "--modules":
            sys.exit(__doc__)
        modules = argv[2:]
    found = problems(req, modules)
    for p in found:
        print(f"venv_check: {p}", file=sys.stderr)
    if found:
        print(f"venv_check: {sys.prefix} does not hold {req}. scripts/lib.sh's ensure_venv "
              "installs it into .venv; if .venv is broken, delete it and run the script again.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
