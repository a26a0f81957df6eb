"""The HTTP side: a REST API for applicants, bureaus and operators, and server-rendered pages."""
