"""scripts/translations.py: the catalogue check CI runs (`make checks`) and the pure-Python
compilation `make setup` runs (issue 14)."""

import gettext
import importlib.util
import shutil
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("translations", ROOT / "scripts/translations.py")
translations = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(translations)

needs_gettext = pytest.mark.skipif(
    not shutil.which("xgettext"), reason="the check extracts strings with GNU gettext"
)

HEADER = {
    "Content-Type": "text/plain; charset=UTF-8",
    "Language": "ru",
    "Plural-Forms": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<10 || n%100>=20) ? 1 : 2);",
}


def _catalogue(tmp_path, entries) -> Path:
    po = polib.POFile()
    po.metadata = dict(HEADER)
    for entry in entries:
        po.append(entry)
    path = tmp_path / "ru" / "LC_MESSAGES" / "django.po"
    path.parent.mkdir(parents=True)
    po.save(str(path))
    return path


def test_a_complete_catalogue_has_no_problems(tmp_path):
    path = _catalogue(tmp_path, [polib.POEntry(msgid="Users", msgstr="Пользователи")])

    assert translations.problems(path) == []


def test_untranslated_fuzzy_and_obsolete_strings_are_problems(tmp_path):
    path = _catalogue(
        tmp_path,
        [
            polib.POEntry(msgid="Users", msgstr="Пользователи"),
            polib.POEntry(msgid="General chat", msgstr=""),
            polib.POEntry(msgid="Edit", msgstr="Редактировать", flags=["fuzzy"]),
            polib.POEntry(msgid="Gone", msgstr="Нет", obsolete=True),
            polib.POEntry(
                msgid="%(counter)s member",
                msgid_plural="%(counter)s members",
                msgstr_plural={0: "%(counter)s участник", 1: "", 2: ""},
            ),
        ],
    )

    assert translations.problems(path) == [
        "untranslated: 'General chat'",
        "fuzzy: 'Edit'",
        "untranslated: '%(counter)s member'",
        "obsolete (no longer in the sources): 'Gone'",
    ]


def test_compiling_writes_a_mo_that_gettext_reads_with_russian_plurals(tmp_path):
    path = _catalogue(
        tmp_path,
        [
            polib.POEntry(msgid="Users", msgstr="Пользователи"),
            polib.POEntry(msgid="Edit", msgstr="Неправильно", flags=["fuzzy"]),
            polib.POEntry(
                msgid="%(counter)s member",
                msgid_plural="%(counter)s members",
                msgstr_plural={
                    0: "%(counter)s участник",
                    1: "%(counter)s участника",
                    2: "%(counter)s участников",
                },
            ),
        ],
    )

    assert translations.compile_catalogues(tmp_path) == [path.with_suffix(".mo")]
    assert translations.compile_catalogues(tmp_path) == []  # up to date: left alone

    with path.with_suffix(".mo").open("rb") as mo:
        catalogue = gettext.GNUTranslations(mo)
    assert catalogue.gettext("Users") == "Пользователи"
    assert catalogue.gettext("Edit") == "Edit"  # a fuzzy translation is not used
    forms = [
        catalogue.ngettext("%(counter)s member", "%(counter)s members", n) for n in (1, 2, 5, 21)
    ]
    assert forms == [
        "%(counter)s участник",
        "%(counter)s участника",
        "%(counter)s участников",
        "%(counter)s участник",
    ]


@needs_gettext
def test_the_committed_russian_catalogue_translates_every_marked_string():
    assert translations.check() == []


@needs_gettext
def test_the_check_fails_on_a_string_the_catalogue_does_not_translate(tmp_path):
    """A copy of locale/ with one translation taken out and one marked fuzzy: the check (which
    merges the sources into it) names both; a string missing altogether shows as untranslated."""
    locale = tmp_path / "locale"
    shutil.copytree(ROOT / "locale", locale, ignore=shutil.ignore_patterns("*.mo"))
    path = locale / "ru" / "LC_MESSAGES" / "django.po"
    po = polib.pofile(str(path))
    po.find("General chat").msgstr = ""
    po.find("Users").flags.append("fuzzy")
    po.remove(po.find("Skip to content"))
    po.save(str(path))

    report = translations.check(locale)

    assert sorted(report) == sorted(
        [
            "locale/ru/LC_MESSAGES/django.po: untranslated: 'General chat'",
            "locale/ru/LC_MESSAGES/django.po: fuzzy: 'Users'",
            "locale/ru/LC_MESSAGES/django.po: untranslated: 'Skip to content'",
        ]
    )
    assert translations.main(["check"]) == 0  # the real locale/ was not touched
