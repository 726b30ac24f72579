"""The audit trail: one row for every state-changing call, whatever its outcome (table and middleware)."""
