"""统计报表 — what the casework adds up to, per measure, bureau and month, and audit exports."""
