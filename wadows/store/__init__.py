"""Where instances live: the store interface and its implementations."""

from wadows.store.base import InstanceRecord, Store, StoreError, StoreUnavailable, InstanceGone

__all__ = ["InstanceRecord", "Store", "StoreError", "StoreUnavailable", "InstanceGone"]
