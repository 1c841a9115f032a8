//! dromaius's core, as a library: everything it decides, nothing it does.
//!
//! The command line ([`cli`]: what an invocation is), the config loader with its
//! permission check ([`config`], [`trust`]), the request grammar ([`request`]), the policy
//! and the judgement of a request ([`policy`]), the rule for handing a domain name to
//! virsh ([`lookup`]), which graphical console may be relayed ([`graphics`]), which
//! fixed commands of standard libvirt clients an ssh session carries ([`tunnel`]) and the
//! one escaping rule ([`escape`]). No virsh, no syslog, no signals: those stay in the binary
//! (`main.rs`), which carries these decisions out. They are a library so that the binary,
//! the administrator's subcommands, the fuzz targets and the tests all use the one copy of
//! each rule.

#![forbid(unsafe_code)]

pub mod action;
pub mod audit;
pub mod cli;
pub mod config;
pub mod entry;
pub mod error;
pub mod escape;
pub mod expiry;
pub mod gateway;
pub mod graphics;
pub mod hypervisor;
pub mod lookup;
#[cfg(test)]
mod manpage;
pub mod pattern;
pub mod placement;
pub mod policy;
pub mod render;
pub mod report;
pub mod request;
pub mod rfb;
pub mod session;
pub mod sshkey;
pub mod system;
pub mod trust;
pub mod tunnel;
pub mod virsh;
