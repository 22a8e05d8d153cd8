"""The de-identification core (PS3.15 Annex E): pure functions on pydicom Datasets, no I/O."""
