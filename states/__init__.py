"""Policy editions, rules and calculators, one state machine per application type, and the
engine: the one writer of case state."""
