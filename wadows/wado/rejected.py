"""A document that cannot be returned, and the RegistryError code that says why."""


class Rejected(Exception):
    def __init__(self, code: str, context: str):
        super().__init__(context)
        self.code = code
        self.context = context  # names the problem; never patient data
