"""Prefect flows that drive the stages of casework; nothing here decides policy.

Importing this package applies relief's Prefect defaults (telemetry off, WARNING logs) before
Prefect itself is imported, unless the operator has set them, then imports Prefect without
letting it silence uvicorn's request log (flows/common.py, import_prefect).
"""

from flows.common import configure_prefect_env, import_prefect

configure_prefect_env()
import_prefect()
