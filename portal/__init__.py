"""portal — the fleet managers' web portal and the drivers' receipt emails."""
