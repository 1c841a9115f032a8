//! dromaius's pure core, as a library: the config loader (with its permission check), the
//! request grammar, the policy and the one escaping rule.
//!
//! These modules decide everything and do nothing: no virsh, no syslog, no signals (those
//! stay in the binary, `main.rs`). They are a library so that the fuzz targets in `fuzz/`
//! and the property tests can drive them directly; the binary uses them from here too, so
//! there is exactly one copy of each rule.

#![forbid(unsafe_code)]

pub mod action;
pub mod config;
pub mod escape;
pub mod policy;
pub mod request;
pub mod trust;
