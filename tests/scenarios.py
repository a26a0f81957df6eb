"""The 20 scenarios of shared/domain/scenarios.yaml (copied to tests/data) as applications.

A scenario's `input` is an application in our format with its `type` added; the few facts a
scenario leaves implicit in its title are filled in here, each with the reason.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).parent / "data" / "scenarios.yaml"
DEFAULT_FILED = "2022-07-01"  # inside the policy window; scenarios without a date mean "in time"

TYPES = {
    "RENT-07": "rent_incubator_subsidy",
    "RENT-08": "rent_park_subsidy",
    "RENT-09": "rent_park_subsidy",
    "RENT-10": "rent_park_subsidy",
    "VAL-01": "rent_incubator_subsidy",
}


def load() -> list[dict[str, Any]]:
    return list(yaml.safe_load(DATA.read_text(encoding="utf-8"))["scenarios"])


def by_id(sid: str) -> dict[str, Any]:
    return next(s for s in load() if s["id"] == sid)


def case_type(sid: str) -> str:
    if sid in TYPES:
        return TYPES[sid]
    prefix = sid.split("-")[0]
    return {
        "RENT": "rent_state_property",
        "LOAN": "loan_subsidy",
        "LIC": "licence_extension",
        "CRED": "credit_exemption",
        "INV": "credit_exemption",
    }[prefix]


def application(sid: str) -> dict[str, Any]:
    """The scenario's input as an application (JSON-ready: dates as ISO strings)."""
    sc = by_id(sid)
    data = copy.deepcopy(sc["input"])
    data["type"] = case_type(sid)
    data.setdefault("application_date", DEFAULT_FILED)
    if sid == "RENT-03":
        # The title says the stores are in central-SOE property: state-owned, inside Beijing,
        # leased in 2022, and run by the chain itself.
        for store in data["stores"]:
            store.update(in_beijing=True, covers_2022=True, final_operator=True)
    if sid == "LIC-02":
        data["licence"]["business_category"] = "catering"  # "Restaurant" in the title
    if sid == "VAL-01":
        amount = data.pop("confirmed_reductions_in_2022")
        data["applicant"]["management_scope"] = "stic"  # not given; any scope gives the same answer
        data["reductions"] = [{"tenant_size": "small", "amount": amount, "confirmed": True}]
    return _jsonable(data)


def invalid_variants() -> list[dict[str, Any]]:
    """INV-01: a valid credit application with each broken USCC."""
    base = application("CRED-01")
    out = []
    for v in by_id("INV-01")["input"]["variants"]:
        app = copy.deepcopy(base)
        app["applicant"]["uscc"] = v["uscc"]
        out.append(app)
    return out


def _jsonable(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _jsonable(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_jsonable(v) for v in node]
    if hasattr(node, "isoformat"):
        return node.isoformat()
    return node
