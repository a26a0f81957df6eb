"""食品许可证有效期顺延 (measure 9) — LicenceExtensionCase: rules and machine.

Non-special food production licences get +6 months ex officio (no application needed; the
authority grants and notifies, the document's 无感推送). Special-food production and food
business licences in a lockdown area get lift + 30 days; while the lockdown is not lifted the
case waits in `extended_pending_lift`. A valid lockdown document opens the green channel.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from base.civil_dates import add_days, add_months
from models.applications import LicenceExtensionApplication
from states.actors import Role
from states.edition import Basis, Edition, carried
from states.lifecycle import (
    DECISION_SOURCES,
    CaseState,
    EffectFacts,
    EffectOnlyMachine,
    Effects,
    NoticeKind,
    Row,
    amount_within_ceiling,
    decision_ready,
    has_lift_date,
    lift_pending,
    lift_resolved,
    no_payout,
    rules_allow_grant,
)
from states.permits import permit
from states.rules import Assessment, Check, Decision, Prior7Entry, TaskKind, route, window_check

if TYPE_CHECKING:
    from models.tables import LicenceExtensionRecord

S = CaseState


def extension_record(e: EffectFacts) -> tuple[type[LicenceExtensionRecord], dict[str, Any]]:
    """许可证有效期顺延登记: the licence's old and new expiry."""
    from models.tables import LicenceExtensionRecord  # the ORM only when a case takes effect

    return LicenceExtensionRecord, dict(
        case_id=e.case_id,
        licensee=e.party,
        licence_no=(e.facts.get("licence") or {}).get("licence_no") or "",
        original_expiry=date.fromisoformat(e.assessment.effect["original_expiry"]),
        new_expiry=date.fromisoformat(e.assessment.effect["new_expiry"]),
        at=e.at,
    )


MACHINE = EffectOnlyMachine(
    "licence_extension",
    needs_confirmation=False,
    register=extension_record,
    extra=(
        Row("grant_ex_officio", S.DRAFT, S.APPROVED, (), Effects(grant=True)),
        # the 有效期顺延告知书 is the licensee's notice; an approval issues no second one
        Row("approve", DECISION_SOURCES, S.APPROVED,
            (decision_ready, rules_allow_grant, amount_within_ceiling),
            Effects(closing="approve", grant=True)),
        Row("await_lift", [S.APPROVED, S.PARTIALLY_APPROVED], S.EXTENDED_PENDING_LIFT,
            (no_payout, lift_pending), Effects(notices=(NoticeKind.EXTENSION,)), auto=True),
        Row("apply_effect", [S.APPROVED, S.PARTIALLY_APPROVED], S.EFFECT_APPLIED,
            (no_payout, lift_resolved), Effects(apply_effect=True, notices=(NoticeKind.EXTENSION,)),
            auto=True),
        Row("lockdown_lifted", S.EXTENDED_PENDING_LIFT, S.EFFECT_APPLIED, (has_lift_date,),
            Effects(apply_effect=True, notices=(NoticeKind.EXTENSION,)), takes_facts=True),
    ),
    permits=(
        ("grant_ex_officio", permit(Role.OPERATOR, Role.SYSTEM)),  # 依职权: the authority acts
        # the lift date is a fact the bureau confirms (an applicant reports it to the bureau)
        ("lockdown_lifted", permit(Role.REVIEWER, Role.OPERATOR)),
    ),
)  # fmt: skip


def unit_ref(app: LicenceExtensionApplication, edition: Edition) -> str:
    """Production licences to 食品生产科; business licences by category (INTERP)."""
    units = carried(edition.licence_extension, "licence_extension").units
    if app.licence.type == "food_production":
        return units["food_production"]
    return units["catering" if app.licence.business_category == "catering" else "food_circulation"]


def assess(
    app: LicenceExtensionApplication,
    edition: Edition,
    *,
    filed_on: date,
    register: list[Prior7Entry],
) -> list[Assessment]:
    p = carried(edition.licence_extension, "licence_extension")
    s = edition.settings
    lic = app.licence
    checks: list[Check] = []
    effect: dict[str, str] = {"original_expiry": lic.expiry.isoformat()}
    ordinary_production = lic.type == "food_production" and not lic.special_food
    if ordinary_production:
        lo = s.licence_auto_extension_expiry_from.value
        hi = s.licence_auto_extension_expiry_to.value
        covered = lo <= lic.expiry <= hi
        earlier = lic.expiry < lo
        new_expiry = add_months(lic.expiry, p.months.value)
        checks.append(
            Check(
                "licence.ordinary_food_production",
                passed=covered or earlier,
                reason_zh=(
                    f"食品生产许可证（非特殊食品）于{lic.expiry}到期，有效期顺延{p.months.value}个月至{new_expiry}"
                    if covered
                    else f"到期日{lic.expiry}早于{lo}，是否顺延转人工复核"
                    if earlier
                    else f"到期日{lic.expiry}晚于{hi}，不在顺延范围内"
                ),
                reason_en=(
                    f"non-special food production licence expiring {lic.expiry}: "
                    f"+{p.months.value} months"
                    if covered
                    else f"expiry {lic.expiry} before {lo}: manual review"
                    if earlier
                    else f"expiry {lic.expiry} after {hi}: not covered"
                ),
                clause=p.months.clause,
                manual_review=earlier,
            )
        )
        effect["new_expiry"] = new_expiry.isoformat()
        decision = Decision.EXTENDED_EX_OFFICIO if (covered or earlier) else Decision.NOT_APPLICABLE
    else:
        in_scope = app.in_lockdown_area and app.could_not_renew_in_time
        checks.append(
            Check(
                "licence.lockdown_area",
                passed=in_scope,
                reason_zh=(
                    f"位于封管控区内且无法及时换发，有效期顺延至封管控解除后{p.days_after_lift.value}日"
                    if in_scope
                    else "食品经营许可证、特殊食品生产许可证仅在封管控区内无法及时换发时顺延；"
                    "请按一般程序申请延续"
                ),
                reason_en=(
                    "in a sealed/controlled area and could not renew: "
                    f"lift + {p.days_after_lift.value} days"
                    if in_scope
                    else "only extended inside a sealed/controlled area; "
                    "ordinary continuation applies"
                ),
                clause=p.days_after_lift.clause,
            )
        )
        if not in_scope:
            decision = Decision.NOT_APPLICABLE
        elif app.lockdown_lift_date is None:
            decision = Decision.EXTENDED_PENDING_LIFT
            effect["new_expiry"] = "pending_lift"
        else:
            # Never shorten a licence: max() is a PROPOSAL (core_rules.md §3B).
            new_expiry = max(lic.expiry, add_days(app.lockdown_lift_date, p.days_after_lift.value))
            effect["new_expiry"] = new_expiry.isoformat()
            decision = Decision.EXTENDED
    green = app.valid_beijing_lockdown_document
    if app.in_lockdown_area:
        checks.append(
            Check(
                "green_channel",
                passed=True,
                reason_zh="凭有效的北京市封管控文件开通绿色通道，点对点协助办理延续"
                if green
                else "未提供有效的北京市封管控文件，不开通绿色通道，按一般渠道办理延续",
                reason_en="green channel opened"
                if green
                else "no lockdown document: normal channel",
                clause=p.green_channel_clause,
                basis=Basis.DOC,
            )
        )
        effect["green_channel"] = "opened" if green else "not_opened"
    checks.insert(
        0,
        window_check(edition, filed_on)
        if not ordinary_production
        else _ex_officio_window(p.months.clause),
    )
    unit = unit_ref(app, edition)
    return [
        Assessment(
            case_type=MACHINE.case_type,
            edition_id=edition.id,
            decision=decision if checks[0].passed else Decision.NOT_ACCEPTED,
            checks=tuple(checks),
            routes=(route(edition, TaskKind.REVIEW, unit), route(edition, TaskKind.DECIDE, unit)),
            effect=effect,
            subject_key=lic.licence_no or lic.expiry.isoformat(),
        )
    ]


def _ex_officio_window(clause: str) -> Check:
    """The ex-officio extension follows the licence's expiry, not a filing date."""
    return Check(
        "window",
        passed=True,
        reason_zh="依职权顺延，不以申请日期为准",
        reason_en="granted ex officio; the filing date does not apply",
        clause=clause,
    )
