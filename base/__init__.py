"""Pure primitives every layer shares: money, civil dates, identifiers, working days, the clock,
query codes. Nothing here imports anything of ours, so models/, states/ and the doors can all
stand on it."""
