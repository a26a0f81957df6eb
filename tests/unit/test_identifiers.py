"""统一社会信用代码 and 工商注册号: the standard's vectors, the scenarios, and check properties."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base.identifiers import (
    USCC_CHARS,
    USCC_WEIGHTS,
    gs15_check_digit,
    is_individual_business_uscc,
    uscc_check_char,
    validate_registration_no,
    validate_uscc,
)

# A copy of shared/domain/scenarios.yaml is kept with the tests (tests/data).
SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios.yaml"
DIGITS = "0123456789"

# Every applicant and licensee USCC in scenarios.yaml, kept here so the test runs without it.
SCENARIO_USCCS = [
    "92110101MA01KQ8P2G",
    "91120116MA07XW3L40",
    "91110101MA00CH4167",
    "91110101MA00MD228U",
    "91110101MA00MF8833",
    "91110101MA00DD7756",
    "91110101MA00FH018X",
    "91110101MA00WC553F",
    "91110101MA00LY669W",
    "91110105MA00CY9927",
    "91110101MA00JR107G",
    "91110101MA00JR203R",
    "91110101MA00LG3054",
    "91110101MA00FP3063",
    "92110101MA00CY404T",
    "91110101MA00LT501B",
    "91110101MA00XY6089",
    "91110101MA00XY7019",
    "91110101MA00HT8028",
]


def test_weights_are_the_standards() -> None:
    assert USCC_WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y43",  # the standard's worked example
        "91110000101623741K",
        "92110101MA0000019Y",  # sum mod 31 = 1: check character Y
        "92110101MA00000290",  # sum mod 31 = 0: check character 0
        *SCENARIO_USCCS,
    ],
)
def test_valid_uscc(code: str) -> None:
    assert validate_uscc(code) is None


@pytest.mark.parametrize(
    ("code", "problem", "zh_part"),
    [
        ("91350100M000100Y4Z", "uscc.check_char", "应为“3”"),
        ("91110101MA00XY608A", "uscc.check_char", "应为“9”"),
        ("91350211M0000XUF46", "uscc.check_char", "应为“R”"),
        ("91110101MA0OXY6089", "uscc.forbidden_char", "第12位是字母“O”"),
        ("91110101MA00XY608", "uscc.length", "您填写了17位"),
        ("", "uscc.length", "您填写了0位"),
        ("91110101MA00XY60899", "uscc.length", "您填写了19位"),
        ("9111010lMA00XY6089", "uscc.charset", "第8位“l”"),
        ("91110101ma00XY6089", "uscc.charset", "请改用大写字母"),
        ("91110101MA00XY 089", "uscc.charset", "第15位"),
        ("911101A1MA00XY6089", "uscc.region", "第7位"),
        ("91110101MA00XY608I", "uscc.check_char", "应为“9”"),
    ],
)
def test_invalid_uscc(code: str, problem: str, zh_part: str) -> None:
    found = validate_uscc(code)
    assert found is not None
    assert found.code == problem
    assert zh_part in found.zh
    assert found.en


def test_forbidden_letter_names_the_lookalike_digit() -> None:
    found = validate_uscc("91110101MA0OXY6089")
    assert found is not None
    assert "数字“0”" in found.zh
    assert "digit 0" in found.en


def test_scenario_usccs_are_valid_except_the_invalid_intake_variants() -> None:
    if not SCENARIOS.exists():
        pytest.skip(f"{SCENARIOS} not present")
    text = SCENARIOS.read_text(encoding="utf-8")
    invalid = {"91110101MA00XY608A", "91110101MA0OXY6089", "91110101MA00XY608"}
    found = re.findall(r"uscc:\s*([0-9A-Z]+)", text)
    assert invalid <= set(found)
    valid = [code for code in found if code not in invalid]
    assert set(valid) == set(SCENARIO_USCCS)
    assert [code for code in valid if validate_uscc(code) is not None] == []


def test_individual_business_prefix() -> None:
    assert is_individual_business_uscc("92110101MA01KQ8P2G")
    assert not is_individual_business_uscc("91110101MA00XY6089")
    assert not is_individual_business_uscc("92110101MA01KQ8P2H")  # wrong check character


def test_uscc_check_char_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        uscc_check_char("91350100M000100Y")
    with pytest.raises(ValueError):
        uscc_check_char("91350100M000100YO")


def legal_chars(n: int, alphabet: str = USCC_CHARS) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=n, max_size=n)


uscc_bodies = st.builds(
    lambda a, b, c: a + b + c, legal_chars(2), legal_chars(6, DIGITS), legal_chars(9)
)


@given(uscc_bodies)
def test_appended_check_char_validates(body: str) -> None:
    assert validate_uscc(body + uscc_check_char(body)) is None


@given(uscc_bodies, st.integers(0, 17), st.sampled_from(USCC_CHARS))
def test_any_single_substitution_is_detected(body: str, position: int, char: str) -> None:
    code = body + uscc_check_char(body)
    if code[position] == char:
        char = USCC_CHARS[(USCC_CHARS.index(char) + 1) % len(USCC_CHARS)]
    changed = code[:position] + char + code[position + 1 :]
    problem = validate_uscc(changed)
    assert problem is not None
    # A legal character in a legal place is caught by the check character itself.
    if not (2 <= position <= 7 and char not in DIGITS):
        assert problem.code == "uscc.check_char"


# GS15-2006 工商注册号


def test_registration_no_examples() -> None:
    body = "11010160000001"  # region 110101, 顺序码 starting 6 (个体工商户)
    code = body + gs15_check_digit(body)
    assert validate_registration_no(code) is None
    wrong = code[:14] + str((int(code[14]) + 1) % 10)
    problem = validate_registration_no(wrong)
    assert problem is not None and problem.code == "regno.check_digit"
    assert f"应为“{code[14]}”" in problem.zh


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("11010160000001", "regno.length"),
        ("1101016000000100", "regno.length"),
        ("11010160000A011", "regno.charset"),
        ("１10101600000011", "regno.charset"),  # full-width digit
    ],
)
def test_invalid_registration_no(code: str, problem: str) -> None:
    found = validate_registration_no(code)
    assert found is not None and found.code == problem


def test_gs15_check_digit_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        gs15_check_digit("1101016000000")
    with pytest.raises(ValueError):
        gs15_check_digit("1101016000000X")


@given(legal_chars(14, DIGITS))
def test_gs15_appended_digit_validates(body: str) -> None:
    assert validate_registration_no(body + gs15_check_digit(body)) is None


@given(legal_chars(14, DIGITS), st.integers(0, 14), st.integers(1, 9))
def test_gs15_any_single_digit_change_is_detected(body: str, position: int, shift: int) -> None:
    code = body + gs15_check_digit(body)
    changed_digit = str((int(code[position]) + shift) % 10)
    changed = code[:position] + changed_digit + code[position + 1 :]
    problem = validate_registration_no(changed)
    assert problem is not None and problem.code == "regno.check_digit"


def test_every_single_substitution_is_detected_exhaustively() -> None:
    # The check is linear mod 31, so what holds for one code holds for every code.
    code = "91350100M000100Y43"
    for position in range(18):
        for char in USCC_CHARS:
            if char != code[position]:
                changed = code[:position] + char + code[position + 1 :]
                assert validate_uscc(changed) is not None, changed
