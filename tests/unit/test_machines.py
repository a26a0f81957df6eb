"""Each type's transition table, checked the way SpiffWorkflow's validate() checks a process."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

import pytest
from transitions import MachineError

from states.catalog import catalog
from states.lifecycle import (
    BUREAU_NOTICES,
    FINAL_STATES,
    CaseState,
    CaseSubject,
    NoticeKind,
    TypeMachine,
)
from states.rules import Assessment, Decision

MACHINES = {code: spec.machine for code, spec in catalog().items()}
START = {CaseState.DRAFT}


def reachable(machine: TypeMachine) -> set[CaseState]:
    seen = set(START)
    todo = deque(START)
    while todo:
        state = todo.popleft()
        for row in machine.rows():
            if state in row.sources() and row.dest not in seen:
                seen.add(row.dest)
                todo.append(row.dest)
    return seen


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_every_state_reachable_from_draft(name: str) -> None:
    machine = MACHINES[name]
    assert set(machine.states()) == reachable(machine)


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_every_open_state_has_a_way_out(name: str) -> None:
    machine = MACHINES[name]
    for state in machine.states():
        exits = [r for r in machine.rows() if state in r.sources() and r.dest != state]
        assert (state in FINAL_STATES) == (not exits), state


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_final_states_reachable(name: str) -> None:
    assert {CaseState.CLOSED, CaseState.REJECTED, CaseState.WITHDRAWN} <= reachable(MACHINES[name])


def subject(state: CaseState) -> CaseSubject:
    a = Assessment("t", "e", Decision.GRANTED, checks=(), claimed=Decimal(0))
    return CaseSubject(state=state.value, assessment=a)


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_every_state_trigger_pair(name: str) -> None:
    """A trigger not in the table for a state raises; one in the table is known to the machine."""
    machine = MACHINES[name]
    triggers = sorted({r.trigger for r in machine.rows()})
    for state in machine.states():
        for trigger in triggers:
            s = subject(state)
            machine.build(s)
            allowed = bool(machine.conditions_for(trigger, state))
            if allowed:
                assert getattr(s, f"may_{trigger}") is not None
            else:
                with pytest.raises(MachineError):
                    getattr(s, trigger)(payload={})


def test_no_back_doors() -> None:
    s = subject(CaseState.UNDER_REVIEW)
    MACHINES["loan_subsidy"].build(s)
    assert not hasattr(s, "to_closed")  # auto_transitions=False


def test_types_that_pay_out_order_payouts_and_others_apply_effects() -> None:
    for name, machine in MACHINES.items():
        order = [r for r in machine.rows() if r.effects.order_payout]
        effect = [r for r in machine.rows() if r.effects.apply_effect]
        assert order and effect, name  # guards (pays_out / no_payout) choose per case
    assert MACHINES["rent_park_subsidy"].pays_out and not MACHINES["credit_exemption"].pays_out


def test_applicant_visible_notices_are_declared_on_transitions() -> None:
    declared = {n for m in MACHINES.values() for r in m.rows() for n in r.effects.notices}
    # every applicant notice is owed by a transition; bureau notices and the applicant's
    # deadline reminders come from the SLA sweep
    assert declared == set(NoticeKind) - BUREAU_NOTICES - {NoticeKind.REPLY_REMINDER}


ENGINE_STEPS = {
    "review",
    "note_task",
    "claim_task",
    "note_request",
    "add_documents",
    "migrate_edition",
    "retry_incident",
    "resolve_incident",
}  # CaseEngine methods, not machine triggers


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_who_may_fire_what_is_declared_for_every_trigger(name: str) -> None:
    """A trigger someone fires has a permit; a trigger only the engine fires has none."""
    machine = MACHINES[name]
    triggers = {r.trigger for r in machine.rows()}
    automatic = {r.trigger for r in machine.rows() if r.auto}
    explicit = {r.trigger for r in machine.rows() if not r.auto}
    for trigger in explicit:
        assert machine.permit_for(trigger) is not None, trigger
    for trigger in automatic - explicit:
        assert machine.permit_for(trigger) is None, trigger
    assert set(machine.permits) - triggers - ENGINE_STEPS <= {"grant_ex_officio", "lockdown_lifted"}
    for trigger, permit in machine.permits.items():
        assert permit.roles, trigger
        if permit.task:  # a task is held by a section's staff only
            assert permit.roles <= {"reviewer", "intake_officer"}, trigger


def test_the_deciding_steps_keep_the_reviewer_out() -> None:
    machine = next(iter(MACHINES.values()))
    for trigger in ("confirm", "approve", "reject"):
        permit = machine.permit_for(trigger)
        assert permit is not None and permit.not_the_reviewer, trigger
    for trigger in ("resubmit", "supply_info", "withdraw"):
        permit = machine.permit_for(trigger)
        assert permit is not None and set(permit.roles) == {"applicant"}, trigger
