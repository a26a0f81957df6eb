"""流程图示 — the process as pictures and as BPMN 2.0, generated from the transition tables."""
