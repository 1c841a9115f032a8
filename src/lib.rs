//! dromaius's core, as a library: everything it decides, nothing it does.
//!
//! The command line ([`cli`]: what an invocation is), the config loader with its
//! permission check ([`config`], [`trust`]), the request grammar ([`request`]), the policy
//! and the judgement of a request ([`policy`]), the rule for handing a domain name to
//! virsh ([`lookup`]), which graphical console may be relayed ([`graphics`]) and the one
//! escaping rule ([`escape`]). No virsh, no syslog, no signals: those stay in the binary
//! (`main.rs`), which carries these decisions out. They are a library so that the binary,
//! the administrator's subcommands, the fuzz targets and the tests all use the one copy of
//! each rule.

#![forbid(unsafe_code)]

pub mod action;
pub mod cli;
pub mod config;
pub mod escape;
pub mod expiry;
pub mod graphics;
pub mod lookup;
pub mod policy;
pub mod request;
pub mod rpc;
pub mod trust;
