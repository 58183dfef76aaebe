"""Sessions, their revocation (the one choke point), signing keys and the event log."""
