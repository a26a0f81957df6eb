"""The policy edition: every number has its clause, verbatim; every OPEN point is a setting."""

from __future__ import annotations

import ast
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from states.edition import EDITIONS_DIR, Basis, Sourced, all_editions, edition_for, load_edition

ROOT = Path(__file__).resolve().parents[2]
RULE_MODULES = [
    "rent_state_property",
    "rent_incubator_subsidy",
    "rent_park_subsidy",
    "credit_exemption",
    "licence_extension",
    "loan_subsidy",
    "rules",
    "lifecycle",
    "configured_rules",
]


def edition():
    return all_editions()[0]


def test_loads_with_all_clauses_verbatim() -> None:
    e = edition()
    assert e.doc_number == "东政发〔2022〕8号"
    assert len(e.quoted_clauses()) > 30


def test_a_drifted_clause_fails_to_load(tmp_path: Path) -> None:
    src = EDITIONS_DIR / "dongcheng-2022-8.yaml"
    text = src.read_text(encoding="utf-8").replace("减免6个月房屋租金", "减免7个月房屋租金")
    (tmp_path / src.name).write_text(text, encoding="utf-8")
    (tmp_path / e_source()).write_bytes((EDITIONS_DIR / e_source()).read_bytes())
    with pytest.raises(ValueError, match="not found verbatim"):
        load_edition(tmp_path / src.name)


def e_source() -> str:
    return edition().source_file


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("rent_state_property.months_standard", 3),
        ("rent_state_property.months_risk_area", 6),
        ("rent_incubator_subsidy.rate", Decimal("0.50")),
        ("rent_park_subsidy.rate", Decimal("0.30")),
        ("rent_park_subsidy.cap_per_property", Decimal("1000000")),
        ("loan_subsidy.principal_threshold", Decimal("20000000")),
        ("loan_subsidy.interest_ceiling_rate", Decimal("0.50")),
        ("loan_subsidy.guarantee_cap", Decimal("100000")),
        ("licence_extension.months", 6),
        ("licence_extension.days_after_lift", 30),
    ],
)
def test_every_number_states_its_clause(path: str, value: object) -> None:
    node = edition()
    for part in path.split("."):
        node = getattr(node, part)
    assert isinstance(node, Sourced)
    assert node.value == value
    assert node.basis == Basis.DOC
    source = (EDITIONS_DIR / edition().source_file).read_text(encoding="utf-8")
    assert node.clause in source


def test_every_open_point_of_the_domain_readme_is_a_setting() -> None:
    settings = edition().settings
    expected = {
        "double_benefit_outcome": "refuse_and_manual_review",
        "loan_interest_rate": Decimal("0.50"),
        "guarantee_fee_share": Decimal("1.0"),
        "guarantee_cap_scope": "per_enterprise_year",
        "licence_auto_extension_expiry_from": date(2022, 6, 15),
        "licence_auto_extension_expiry_to": date(2022, 12, 31),
        "date_arithmetic": "civil_code",
        "credit_causation": "confirmed_by_reviewer",
        "credit_individual_business": "accept_with_manual_review",
        "municipal_state_property_unit": "ndrc.industry",
        "chain_store_size_test": "per_store",
        "subsidy_payer": "finance",
        "application_window_from": date(2022, 6, 15),
        "application_window_to": date(2022, 12, 31),
    }
    for name, value in expected.items():
        setting = getattr(settings, name)
        assert setting.value == value, name
        assert setting.description, name


def test_edition_in_force_by_filing_date() -> None:
    assert edition_for(date(2022, 7, 1)).id == "dongcheng-2022-8"
    assert edition_for(date(2023, 1, 5)).id == "dongcheng-2022-8"  # judged, then refused


def test_settings_are_validated() -> None:
    data = yaml.safe_load((EDITIONS_DIR / "dongcheng-2022-8.yaml").read_text(encoding="utf-8"))
    data["settings"]["loan_interest_rate"]["value"] = "0.60"  # above the document's 最高50%
    from states.edition import Edition

    with pytest.raises(ValueError, match="loan_interest_rate"):
        Edition.model_validate(data)


@pytest.mark.parametrize("module", RULE_MODULES)
def test_rule_modules_hold_no_policy_numbers(module: str) -> None:
    """Numbers live in the edition: rule code may use only 0 and 1 (and calendar bounds)."""
    tree = ast.parse((ROOT / "states" / f"{module}.py").read_text(encoding="utf-8"))
    allowed = {0, 1, 12, 31}  # 1 Jan / 31 Dec of a year
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            if isinstance(node.value, bool):
                continue
            assert node.value in allowed, f"{module}.py:{node.lineno}: literal {node.value}"
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and not _docstring(tree, node)
        ):
            text = (
                node.value.replace("东政办发〔2022〕7号", "").replace("7号", "").replace("0.00", "")
            )
            assert not re.search(r"\d", text), (
                f"{module}.py:{node.lineno}: number in {node.value!r}"
            )


def _docstring(tree: ast.AST, const: ast.Constant) -> bool:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if body[0].value is const:
                return True
    return False


def test_configured_types_hold_their_numbers_in_parameters() -> None:
    """A configured type's checks compare with its parameters (each with its clause), never
    with a number or a date of their own; every parameter quotes the document (DOC/INTERP)."""
    for e in all_editions():
        source = re.sub(r"\s+", "", (EDITIONS_DIR / e.source_file).read_text(encoding="utf-8"))
        for code, declared in e.configured_types.items():
            codes = {c for f in declared.facts.values() for c in f.choices}
            for check in declared.checks:
                texts = re.findall(r"'([^']*)'", check.test)  # a choice code, or a date?
                assert [t for t in texts if re.search(r"\d", t) and t not in codes] == [], (
                    code,
                    check.code,
                )
                bare = re.sub(r"'[^']*'", "", check.test)
                numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?", bare)
                assert {float(n) for n in numbers} <= {0.0, 1.0}, (code, check.code, numbers)
            for name, param in declared.params.items():
                assert param.basis in (Basis.DOC, Basis.INTERP), (code, name)
                assert re.sub(r"\s+", "", param.clause) in source, (code, name)
