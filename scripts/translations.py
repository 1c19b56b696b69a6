"""Parley's message catalogues (locale/<lang>/LC_MESSAGES/django.po), three commands:

  python scripts/translations.py compile   .po -> .mo with polib (pure Python: no GNU gettext).
                                           `make setup` runs it; the .mo files are not in git.
  python scripts/translations.py check     CI (`make checks`): extracts every marked string from
                                           the sources (Django's makemessages, into a temporary
                                           copy of locale/) and fails when a string is missing
                                           from a catalogue, untranslated, fuzzy or obsolete, or
                                           when msgfmt --check finds a broken entry. Needs GNU
                                           gettext (xgettext, msgmerge, msgfmt).
  python scripts/translations.py update    the same extraction into locale/ itself (then
                                           translate what `check` lists).

One list of what makemessages skips (IGNORE), so `update` and `check` see the same sources.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
# Languages with a catalogue (settings.LANGUAGES minus the source language, English).
LANGUAGES = ["ru"]
# Not Parley's own strings, or not sources at all. "locale" must be ignored too: otherwise
# makemessages writes into ./locale whatever LOCALE_PATHS says.
IGNORE = [
    ".venv",
    "node_modules",
    "locale",
    "static/vendor",
    "static/dist",
    "staticfiles",
    "media",
    "attachments",
    "docs",
    "e2e",
    "bench",
    "faults",
    "fuzz",
    "examples",
    "build",
    "*/tests/*",
    "conftest.py",
]


def catalogues(locale: Path = LOCALE) -> list[Path]:
    return sorted(locale.glob("*/LC_MESSAGES/*.po"))


def compile_catalogues(locale: Path = LOCALE) -> list[Path]:
    """Write each .po's .mo next to it (fuzzy and untranslated entries left out, as msgfmt
    does), only when the .po is newer. Returns the .mo files written."""
    written = []
    for po_path in catalogues(locale):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        tmp = mo_path.with_suffix(".mo.tmp")
        polib.pofile(str(po_path)).save_as_mofile(str(tmp))
        os.replace(tmp, mo_path)
        written.append(mo_path)
    return written


def problems(po_path: Path) -> list[str]:
    """What is wrong with one catalogue: untranslated, fuzzy and obsolete entries (a string
    extraction has just merged the sources into it, so "missing" shows as untranslated)."""
    catalogue = polib.pofile(str(po_path))
    found = []
    for entry in catalogue:
        if entry.obsolete:
            found.append(f"obsolete (no longer in the sources): {entry.msgid!r}")
        elif entry.fuzzy:
            found.append(f"fuzzy: {entry.msgid!r}")
        elif not entry.translated():
            found.append(f"untranslated: {entry.msgid!r}")
    if not catalogue.metadata.get("Plural-Forms"):
        found.append("the header has no Plural-Forms")
    return found


def _makemessages(root: Path) -> None:
    """Django's makemessages for every language over the sources under ``root``, writing into
    ``root``/locale (makemessages writes next to the working directory's locale/, whatever
    LOCALE_PATHS says, so a check runs it in a copy of the sources)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    locale_paths = settings.LOCALE_PATHS
    settings.LOCALE_PATHS = [str(root / "locale")]
    cwd = os.getcwd()
    os.chdir(root)  # makemessages walks the current directory
    try:
        call_command("makemessages", locale=LANGUAGES, ignore_patterns=IGNORE, verbosity=0)
    finally:
        os.chdir(cwd)
        settings.LOCALE_PATHS = locale_paths


def _source_copy(destination: Path, locale: Path) -> None:
    """The sources makemessages reads (not .git, the venv, node_modules or IGNORE), with a copy
    of ``locale`` (without its .mo files) as their locale/."""
    skip = {name for name in IGNORE if "/" not in name and "*" not in name}
    skip |= {".git", ".pytest_cache", ".ruff_cache", "test-results", "db.sqlite3*", "*.egg-info"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory).resolve() == ROOT
        return {
            name
            for name in names
            if (top and any(fnmatch.fnmatch(name, pattern) for pattern in skip))
            or name.endswith((".mo", ".pyc"))
        }

    shutil.copytree(ROOT, destination, ignore=ignore, symlinks=True)
    if locale.exists():
        shutil.copytree(locale, destination / "locale", ignore=shutil.ignore_patterns("*.mo"))
    else:
        (destination / "locale").mkdir()


def _need_gettext() -> None:
    missing = [tool for tool in ("xgettext", "msgmerge", "msgfmt") if not shutil.which(tool)]
    if missing:
        sys.exit(
            f"translations: {', '.join(missing)} not found. The check extracts strings with GNU "
            "gettext; Debian/Ubuntu: apt-get install gettext"
        )


def check(locale: Path = LOCALE) -> list[str]:
    """Every problem of every catalogue once the sources are merged into a copy of it."""
    _need_gettext()
    report = []
    with tempfile.TemporaryDirectory(prefix="parley-locale-") as tmp:
        sources = Path(tmp) / "parley"
        _source_copy(sources, locale)
        _makemessages(sources)
        copy = sources / "locale"
        for po_path in catalogues(copy):
            name = po_path.relative_to(copy)
            committed = locale / name
            if not committed.exists():
                report.append(f"locale/{name}: missing (run: make translations)")
                continue
            report += [f"locale/{name}: {problem}" for problem in problems(po_path)]
            result = subprocess.run(  # noqa: S603 - fixed arguments
                ["msgfmt", "--check", "-o", os.devnull, str(committed)],  # noqa: S607
                capture_output=True,
                text=True,
            )
            if result.returncode:
                report.append(f"locale/{name}: msgfmt --check:\n{result.stderr.strip()}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["compile", "check", "update"])
    args = parser.parse_args(argv)
    if args.command == "compile":
        for mo_path in compile_catalogues():
            print(f"compiled {mo_path.relative_to(ROOT)}")
        return 0
    if args.command == "update":
        _need_gettext()
        _makemessages(ROOT)
        for po_path in catalogues():
            for problem in problems(po_path):
                print(f"{po_path.relative_to(ROOT)}: {problem}")
        return 0
    report = check()
    for line in report:
        print(line, file=sys.stderr)
    if report:
        print(
            f"\ntranslations: {len(report)} problem(s). Run `make translations`, translate, "
            "and remove the fuzzy marks.",
            file=sys.stderr,
        )
        return 1
    print("translations: every string is translated in " + ", ".join(LANGUAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
