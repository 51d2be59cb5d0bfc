"""Every checklist id cited in the tests, the code and the docs resolves to ``docs/checklist.rst``.

The ids, their rules and RFC sections are one table, ``CHECKLIST`` in
``docs/scripts/checklist_ids.py``; the page's lists of tests are generated from the tests by the
same script.  Here: no id is cited that the table lacks, the page is current, ids that no test
names are reported (a warning, not a failure), and the scanner finds ids only where they are ids.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "docs" / "scripts"))

from checklist_ids import (  # noqa: E402
    CHECKLIST,
    GENERATED,
    GROUPS,
    Citation,
    citations,
    covering_tests,
    ids_in_name,
    ids_in_text,
    render,
)

# The checklist itself lives outside the repository (CI has a read-only copy beside it).
CHECKLIST_FILE = REPO.parent / "shared" / "SMTP-CHECKLIST.md"


class UntestedChecklistIds(UserWarning):
    """Ids in the table that no test names yet."""


@pytest.fixture(scope="module")
def found() -> list[Citation]:
    return citations(REPO)


def test_every_cited_id_is_in_the_table(found: list[Citation]) -> None:
    unknown = [f"{c.path}:{c.line}: {c.id}" for c in found if c.id not in CHECKLIST]
    assert not unknown, (
        "ids cited but missing from CHECKLIST in docs/scripts/checklist_ids.py "
        "(a typo, or a checklist item to add there):\n" + "\n".join(unknown)
    )


def test_ids_no_test_names_are_reported(found: list[Citation]) -> None:
    covered = covering_tests(found)
    untested = [key for key in CHECKLIST if key not in covered]
    if untested:
        warnings.warn(
            UntestedChecklistIds(f"no test names checklist ids {', '.join(untested)}"),
            stacklevel=1,
        )


def test_the_docs_page_lists_the_current_tests(found: list[Citation]) -> None:
    current = GENERATED.read_text(encoding="utf-8") if GENERATED.exists() else ""
    assert current == render(found), (
        f"{GENERATED.relative_to(REPO)} is stale: run python docs/scripts/checklist_ids.py --write"
    )


@pytest.mark.skipif(not CHECKLIST_FILE.is_file(), reason=f"no checklist at {CHECKLIST_FILE}")
def test_the_table_has_exactly_the_checklist_ids() -> None:
    text = CHECKLIST_FILE.read_text(encoding="utf-8")
    # "- **G1** (S) ...", "- **S1 CRLF/NUL injection.**", "- **S6/S7 Memory DoS.**"
    heads = re.findall(r"^- \*\*([A-Z]\d+(?:/[A-Z]\d+)*)\b", text, re.MULTILINE)
    listed = [key for head in heads for key in head.split("/")]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(CHECKLIST)


def test_the_table_is_well_formed() -> None:
    for key, (rule, sections) in CHECKLIST.items():
        assert re.fullmatch(r"[A-Z][1-9]\d?", key), key
        assert key[0] in GROUPS, key
        assert "\n" not in rule and rule.endswith("."), key
        assert len(rule) <= 160, f"{key}: keep the rule to one line"
        assert sections.strip(), key
    for letter in GROUPS:
        numbers = [int(key[1:]) for key in CHECKLIST if key[0] == letter]
        assert numbers == list(range(1, len(numbers) + 1)), letter


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("# 421 ends everything pending (C15).", ["C15"]),
        ('"""S3/S8, RFC 8314 §5.2: ..."""', ["S3", "S8"]),
        ("limits (S6/S7)", ["S6", "S7"]),
        ("checklist C15-C17 and X1-X3", ["C15", "C16", "C17", "X1", "X2", "X3"]),
        ("The greeting (G1–G3)", ["G1", "G2", "G3"]),
        ("Identifiers such as **G4** or **S8**", ["G4", "S8"]),
        # escaped octets, Unicode control sets, hex and other look-alikes are not ids
        ('("é", "+C3+A9")', []),
        ("%C3%A9 and =C3=A9 and \\xC3", []),
        ("all of C0 and C1, DEL", []),
        ("C1 controls (NEL among them)", []),
        ("0x1F, SHA256, IPv6, X-K0, ENVID=Q1, H2", []),
    ],
)
def test_ids_are_found_in_text_only_where_they_are_ids(text: str, ids: list[str]) -> None:
    assert ids_in_text(text) == ids


@pytest.mark.parametrize(
    ("name", "ids"),
    [
        ("test_C8_G7_staged_MAIL_the_server_cannot_take", ["C8", "G7"]),
        ("test_x5_second_address_of_a_multihomed_mx", ["X5"]),
        ("test_format_mailbox_valid_c1_c21", ["C1", "C21"]),
        ("test_s1_c1_controls_and_lone_surrogates_rejected", ["S1"]),
        ("test_b64_and_sha256_and_ipv6", []),
    ],
)
def test_ids_are_found_in_names_only_as_whole_words(name: str, ids: list[str]) -> None:
    assert ids_in_name(name) == ids
