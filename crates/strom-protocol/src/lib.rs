//! strom-protocol.
