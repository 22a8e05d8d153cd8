"""A document that cannot be returned, and the RegistryError code that says why."""

# Finer reasons behind a shared RAD-69 code, for transports that say more (WADO-URI: 410, 401/403).
GONE = "gone"
NOT_AUTHORIZED = "not-authorized"


class Rejected(Exception):
    def __init__(self, code: str, context: str, kind: str | None = None):
        super().__init__(context)
        self.code = code
        self.context = context  # names the problem; never patient data
        self.kind = kind
