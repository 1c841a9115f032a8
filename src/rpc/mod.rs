//! libvirt's RPC protocol, filtered between a user's libvirt client (hostile) and the local
//! daemon (trusted). The rules, for a security reviewer:
//!
//! - **Default deny, by procedure**: [`allow::TABLE`] is the allowlist. Anything else
//!   (define, undefine, config changes, migration, save/restore, snapshot changes, other
//!   objects, an unknown number, the qemu and lxc programs, calls passing fds) gets
//!   libvirt's access-denied error from the filter and is never forwarded.
//! - **A domain is its UUID**: the daemon resolves domains by UUID and a client may pair
//!   any name with any UUID, so calls are judged by UUID, through a UUID → name map learnt
//!   only from the daemon's answers. An unknown UUID is a domain the key may not see.
//! - **Invisible is missing**: a lookup by an invisible name is never forwarded; an
//!   invisible answer to a lookup by UUID or id and the daemon's own "no such domain" are
//!   both replaced by one error worded as the daemon's driver words it.
//! - **Listings, stats and events** carry only what the grants let the key see now (they
//!   are asked on every packet); old listings are answered from a list-all sent instead.
//! - **Reads** trust a learnt name for [`filter::FRESH`], then ask the daemon again; XML
//!   is never asked for with the SECURE flag.
//! - **Acting** needs the grant's command and is forwarded only after the daemon said
//!   which domain the UUID is now; flags are held to a safe set (no console FORCE, no
//!   guest agent, Ctrl+Alt+Del keys only).
//! - **Serials and streams**: the filter owns the daemon-side serials and matches every
//!   reply and stream packet to what an allowed call opened. Anything malformed,
//!   unexpected, after close or over a limit ends the connection; nothing panics.
//!
//! `wire`, `xdr`, `remote`, `allow`, `filter` are pure; [`mod@relay`] is the one I/O loop.

pub mod allow;
pub mod filter;
pub mod relay;
pub mod remote;
pub mod wire;
pub mod xdr;

pub use filter::{Call, End, Filter, Grants, Out};
pub use relay::{ClientOut, Context, Ending, relay};
