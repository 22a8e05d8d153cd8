"""Who may call the server and what they get: users file, caller identification, audit trail, shared metrics.

Nothing here imports the SOAP stack or gunicorn: the transport hands in WSGI environ dicts and plain values.
"""
