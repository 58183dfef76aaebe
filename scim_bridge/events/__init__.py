"""Events: everything a receiver could care about, recorded as data in the caller's
transaction (record.py), with one delivery row per subscribed receiver (the outbox). The worker
(worker.py) claims and sends them (outbox.py) through one sender per receiver kind
(senders.py; webhooks.py is one)."""
