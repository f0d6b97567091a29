//! strom-broker.
