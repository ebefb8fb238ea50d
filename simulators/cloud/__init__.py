"""The cloud backend simulator (its visitor flows arrive with issue 8)."""
