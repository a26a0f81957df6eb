"""REST routes, one module per kind of user."""
