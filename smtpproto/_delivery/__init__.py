"""Delivery: MX walking, relays and the per-recipient report."""
