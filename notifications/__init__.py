"""Rendering of notices from the outbox and their delivery through channels."""
