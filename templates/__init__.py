"""Jinja templates: notices (zh-CN first) and web pages."""
