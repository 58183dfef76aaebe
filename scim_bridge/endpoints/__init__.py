"""Flask blueprints: authenticate, parse, call one service operation, render."""
