//! strom-metadata.
