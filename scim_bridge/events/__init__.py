"""Events: everything a receiver could care about, recorded as data in the caller's
transaction (record.py). Delivery to receivers attaches to that one function."""
