//! strom-storage.
