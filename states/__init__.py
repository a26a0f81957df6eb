"""Policy editions, eligibility rules, benefit calculators, one state machine per application type, and the engine: the one writer of case state."""
