"""The WADO-WS operations, transport-free: parsed requests in, per-document results out."""
