"""统一社会信用代码 and 工商注册号 checks, so a mistyped identifier is caught at intake (补正)."""

from __future__ import annotations

from dataclasses import dataclass

# GB 32100-2015 表1: the index of a character is its value; I, O, S, V and Z are never used.
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_FORBIDDEN = "IOSVZ"
# W_i = 3^(i-1) mod 31. Every weight is coprime to 31, so any single wrong character is caught.
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
USCC_LENGTH = 18
REGNO_LENGTH = 15

_STANDARD = "GB 32100-2015"
_REGNO_STANDARD = "GS15-2006"
# Letters applicants type for digits; the hint turns a rejection into a one-step correction.
_LOOKALIKE_DIGITS = {"O": "0", "I": "1", "Z": "2", "S": "5"}


@dataclass(frozen=True)
class IdentifierProblem:
    """Why an identifier was rejected: a stable code plus the sentence the applicant reads."""

    code: str
    zh: str
    en: str


def uscc_check_char(first17: str) -> str:
    """校验码: the 18th character that GB 32100-2015 derives from the first 17."""
    if len(first17) != USCC_LENGTH - 1 or any(c not in USCC_CHARS for c in first17):
        raise ValueError(f"need 17 characters from {USCC_CHARS!r}, got {first17!r}")
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    # C18 = 31 - (total mod 31), where 31 is written "0": the same as -total mod 31.
    return USCC_CHARS[-total % 31]


def validate_uscc(code: str) -> IdentifierProblem | None:
    """None if the code is a well-formed USCC, else the first rule it breaks, in applicant terms."""
    if len(code) != USCC_LENGTH:
        return IdentifierProblem(
            "uscc.length",
            f"统一社会信用代码应为18位，您填写了{len(code)}位，请核对营业执照后重新填写。",
            f"A unified social credit code has 18 characters; {len(code)} were given.",
        )
    # Position 18 is left to the check-character rule, which can name the right character.
    for position, char in enumerate(code[:17], start=1):
        if char in USCC_FORBIDDEN:
            hint_zh, hint_en = "", ""
            if char in _LOOKALIKE_DIGITS:
                digit = _LOOKALIKE_DIGITS[char]
                hint_zh = f"请核对是否应为数字“{digit}”。"
                hint_en = f" Did you mean the digit {digit}?"
            return IdentifierProblem(
                "uscc.forbidden_char",
                f"统一社会信用代码第{position}位是字母“{char}”，"
                f"代码中不使用字母I、O、S、V、Z（{_STANDARD}）。{hint_zh}",
                f"Character {position} is the letter {char!r}; "
                f"{_STANDARD} never uses I, O, S, V or Z.{hint_en}",
            )
    for position, char in enumerate(code[:17], start=1):
        if char not in USCC_CHARS:
            lower = char.upper() in USCC_CHARS
            return IdentifierProblem(
                "uscc.charset",
                f"统一社会信用代码第{position}位“{char}”不是有效字符，"
                f"代码只由数字和大写英文字母组成（{_STANDARD}）。"
                + ("请改用大写字母。" if lower else ""),
                f"Character {position} ({char!r}) is not allowed; "
                f"a code uses only digits and upper-case letters ({_STANDARD})."
                + (" Please use upper case." if lower else ""),
            )
    for position, char in enumerate(code[2:8], start=3):
        if not char.isdigit():
            return IdentifierProblem(
                "uscc.region",
                f"统一社会信用代码第3至8位是登记管理机关行政区划码，应全部为数字，"
                f"第{position}位却是“{char}”。",
                f"Characters 3-8 are the registration authority's region code and must be "
                f"digits; character {position} is {char!r}.",
            )
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        return IdentifierProblem(
            "uscc.check_char",
            f"按前17位计算，统一社会信用代码第18位（校验码）应为“{expected}”，"
            f"您填写的是“{code[17]}”（{_STANDARD}）。请对照营业执照逐位核对。",
            f"From the first 17 characters the check character (18th) should be {expected!r}, "
            f"not {code[17]!r} ({_STANDARD}); please compare each character with the licence.",
        )
    return None


def is_individual_business_uscc(code: str) -> bool:
    """个体工商户: a valid USCC whose registration department is 9 and category 2."""
    return code.startswith("92") and validate_uscc(code) is None


def gs15_check_digit(first14: str) -> str:
    """校验位 of a 15-digit 工商注册号: ISO 7064 MOD 11,10 over the first 14 digits (GS15-2006)."""
    if len(first14) != REGNO_LENGTH - 1 or not _ascii_digits(first14):
        raise ValueError(f"need 14 digits, got {first14!r}")
    product = 10
    for digit in first14:
        remainder = (product + int(digit)) % 10 or 10
        product = (2 * remainder) % 11
    # The check digit c makes (product + c) mod 10 equal 1.
    return str((1 - product) % 10)


def validate_registration_no(code: str) -> IdentifierProblem | None:
    """None if the code is a well-formed legacy 工商注册号, else the rule it breaks."""
    if len(code) != REGNO_LENGTH:
        return IdentifierProblem(
            "regno.length",
            f"工商注册号应为15位，您填写了{len(code)}位，请核对营业执照后重新填写。",
            f"A business registration number has 15 digits; {len(code)} were given.",
        )
    for position, char in enumerate(code, start=1):
        if not _ascii_digits(char):
            return IdentifierProblem(
                "regno.charset",
                f"工商注册号只由数字组成，第{position}位却是“{char}”。",
                f"A business registration number has only digits; character {position} "
                f"is {char!r}.",
            )
    expected = gs15_check_digit(code[:14])
    if code[14] != expected:
        return IdentifierProblem(
            "regno.check_digit",
            f"按前14位计算，工商注册号第15位（校验位）应为“{expected}”，"
            f"您填写的是“{code[14]}”（{_REGNO_STANDARD}）。请对照营业执照逐位核对。",
            f"From the first 14 digits the check digit (15th) should be {expected!r}, "
            f"not {code[14]!r} ({_REGNO_STANDARD}); please compare each digit with the licence.",
        )
    return None


def _ascii_digits(text: str) -> bool:
    """True for 0-9 only: str.isdigit also accepts full-width and superscript digits."""
    return text.isascii() and text.isdigit()


def bounded_key(*parts: str, limit: int = 120) -> str:
    """A request key made of its parts; one too long for the column becomes its sha256, so a
    long Idempotency-Key or batch name can never overflow the database."""
    import hashlib

    key = ":".join(parts)
    return key if len(key) <= limit else "sha256:" + hashlib.sha256(key.encode()).hexdigest()
