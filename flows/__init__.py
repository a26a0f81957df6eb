"""Prefect flows that drive the stages of casework; nothing here decides policy.

Importing this package applies relief's Prefect defaults (telemetry off, WARNING logs) before
Prefect itself is imported, unless the operator has set them.
"""

from flows.common import configure_prefect_env

configure_prefect_env()
