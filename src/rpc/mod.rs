//! libvirt's RPC protocol, filtered: what the gateway relays between a user's libvirt
//! client (hostile) and the local daemon (trusted) when the SSH channel carries libvirt's
//! own remote protocol instead of a dromaius request. For a security reviewer, the rules:
//!
//! - **Default deny, by procedure.** [`allow::TABLE`] lists every procedure of the remote
//!   program that may pass, each with its rule; any other (define, undefine, config
//!   changes, migration, save/restore, snapshot changes, networks, pools, volumes, devices,
//!   secrets, an unknown number) is answered by the filter with libvirt's access-denied
//!   error and never forwarded. So are calls of the qemu and lxc programs and calls
//!   passing file descriptors.
//! - **A domain is its UUID.** The daemon resolves a domain argument by UUID only, and a
//!   client may pair any name with any UUID, so every domain call is judged by its UUID,
//!   through a UUID → name map learnt only from the daemon's answers (lookups, listings,
//!   events, stats). An unknown UUID is a domain the key may not see.
//! - **Invisible is missing.** A lookup by a name the key may not see is never forwarded; a
//!   lookup by UUID or id whose answer the key may not see, and the daemon's own "no such
//!   domain", are both replaced by one synthesized error in the driver's words.
//! - **Listings, stats and events** carry only the domains the key may see now (the
//!   grants are asked on every packet); old-style listings are answered from a list-all the
//!   filter sends in their place; a bare count is never passed on.
//! - **Reads** of a visible domain use a learnt name at most [`filter::FRESH`] old, else
//!   the filter asks the daemon again first; XML is never asked for with the SECURE flag.
//! - **Acting** (start, shutdown, reboot, reset, destroy, suspend, resume, ctrl-alt-del,
//!   screenshot, console) needs the grant's command and is forwarded only after the filter
//!   asked the daemon which domain the UUID is now; flags are held to a safe set (no
//!   console FORCE, no guest agent, only Ctrl+Alt+Del keys).
//! - **The filter owns the daemon-side serials**, matches every reply to its call and every
//!   stream packet to a stream an allowed call opened. Anything malformed, unexpected,
//!   after the client's close, or over a limit ends the connection; nothing panics.
//!
//! `wire`, `xdr`, `remote`, `allow` and `filter` are pure; [`relay`] is the one loop that
//! does I/O, between the client's channel and the daemon's socket.

pub mod allow;
pub mod filter;
pub mod relay;
pub mod remote;
pub mod wire;
pub mod xdr;

pub use filter::{Call, End, Filter, Grants, Out};
pub use relay::{Context, Ending, relay};
