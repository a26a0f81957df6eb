"""Prefect flows that drive the stages of casework; nothing here decides policy."""
