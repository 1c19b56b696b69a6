"""Supply-chain checks for CI and `make audit`, in three parts:

1. the lock files (requirements/*.txt) pin exactly the versions pyproject.toml pins, so a fresh
   machine installs what CI tested;
2. every locked version is checked offline against requirements/advisories.toml;
3. pip-audit checks the locks against PyPI's vulnerability data when that service answers. Where
   it does not (a machine that reaches the package index but not PyPI's JSON API), that is said
   plainly and the offline check stands.

Exit 1 on a stale lock or a known vulnerability; 0 otherwise."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = [ROOT / "requirements" / "app.txt", ROOT / "requirements" / "dev.txt"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def check_lock(pins: dict[str, dict[str, Version]]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {"app.txt": list(project["dependencies"]), "dev.txt": list(project["dependencies"])}
    for extra in project.get("optional-dependencies", {}).values():
        wanted["dev.txt"] += extra
    problems = []
    for lock, requirements in wanted.items():
        for text in requirements:
            req = Requirement(text)
            have = pins[lock].get(canonicalize_name(req.name))
            if have is None or have not in req.specifier:
                problems.append(f"{lock}: {req} is locked as {have or 'missing'}: run `make lock`")
    return problems


def check_advisories(pins: dict[str, Version]) -> tuple[list[str], int]:
    entries = tomllib.loads((ROOT / "requirements" / "advisories.toml").read_text())["advisory"]
    found = []
    for entry in entries:
        version = pins.get(canonicalize_name(entry["package"]))
        if version is not None and SpecifierSet(entry["affected"]).contains(version, True):
            found.append(f"{entry['package']} {version}: {entry['id']} — {entry['summary']}")
    return found, len(entries)


def pip_audit(lock: Path) -> tuple[str, list[str]]:
    """("online", vulnerabilities) or ("unreachable", [])."""
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "-r",
        str(lock),
        "--require-hashes",
        "--disable-pip",
        "--no-deps",
        "-s",
        "pypi",
        "-f",
        "json",
        "--progress-spinner",
        "off",
    ]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=300)  # noqa: S603
        report = json.loads(run.stdout or "{}")
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return "unreachable", []
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    if not audited:
        return "unreachable", []
    vulns = [f"{d['name']} {d['version']}: {v['id']}" for d in audited for v in d.get("vulns", [])]
    return "online", vulns


def main() -> int:
    pins = {lock.name: locked(lock) for lock in LOCKS}
    failed = False
    for problem in check_lock(pins):
        print(f"audit: stale lock: {problem}")
        failed = True
    found, count = check_advisories(pins["dev.txt"])
    print(f"audit: offline: {len(pins['dev.txt'])} locked packages against {count} advisories")
    for line in found:
        print(f"audit: VULNERABLE: {line}")
        failed = True
    state, vulns = pip_audit(LOCKS[1])
    if state == "unreachable":
        print("audit: online: PyPI's vulnerability service did not answer; offline check only")
    else:
        print(f"audit: online: pip-audit found {len(vulns)} known vulnerabilities")
    for line in vulns:
        print(f"audit: VULNERABLE: {line}")
        failed = True
    print("audit: FAILED" if failed else "audit: passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
