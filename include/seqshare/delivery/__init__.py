"""Deliveries to external groups: the snapshot at sequencing time, the plan, and the group transfers."""
