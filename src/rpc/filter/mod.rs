//! The filter's state machine: it sees every whole packet in both directions and answers
//! with what to send where ([`Out`]), or with the [`End`] of the connection.
//!
//! It owns the serial numbers on the daemon's side (so calls it injects never collide with
//! the client's), the UUID → name map learnt from the daemon's answers only, the calls
//! waiting for a reply, and the streams that allowed calls opened. It does no I/O and
//! keeps no clock: the caller passes the time and the current [`Grants`] with every
//! packet, so revocation takes effect on the next packet. Framing is `wire`'s; which
//! procedure is allowed is `allow`'s table.
//!
//! This module sorts packets by program and type; the rest is by concern: `call` judges a
//! client's call by its rule, `judge` a call on one domain by its UUID, `reply` matches and
//! rewrites the daemon's replies, `event` filters its events, `stream` relays the streams,
//! `pending` owns the daemon-side serials, `learnt` the UUID → name map, and `errors` the
//! errors the filter writes itself.

mod call;
mod errors;
mod event;
mod judge;
mod learnt;
mod pending;
mod reply;
mod stream;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::action::Action;

use super::remote::{
    self, DOMAIN_LIST_MAX, KEEPALIVE_PING, KEEPALIVE_PONG, KEEPALIVE_PROGRAM, KEEPALIVE_VERSION,
    LXC_PROGRAM, QEMU_PROGRAM, REMOTE_PROGRAM, REMOTE_VERSION, Uuid,
};
use super::wire::{self, Header, Packet, Status, Type};
use super::xdr::XdrError;

pub use errors::Driver;
use learnt::Learnt;
use pending::Pending;
use stream::Stream;

/// What the key may do, asked afresh for every call and every event.
pub trait Grants {
    /// Whether the domain appears in listings, lookups and events, and may be read.
    fn may_see(&self, name: &str) -> bool;
    /// Whether the key may do `action` to the domain.
    fn may(&self, action: Action, name: &str) -> bool;
}

/// Something for the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A whole packet for the daemon.
    ToDaemon(Vec<u8>),
    /// A whole packet for the client.
    ToClient(Vec<u8>),
    /// One record for the audit log: an acting call, or a denied one.
    Audit(Call),
}

/// An audited call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The procedure's name (`DOMAIN_CREATE`), or `qemu program`, `unknown procedure N`.
    pub procedure: String,
    /// The command it is, for an acting call.
    pub action: Option<Action>,
    /// The domain, by the name the daemon knows it by when the filter knows the UUID; else
    /// the name the client sent.
    pub domain: Option<String>,
    pub allowed: bool,
}

/// Why the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A packet that is not libvirt's protocol, or a body that does not parse.
    Malformed(String),
    /// A packet the filter did not expect: a program, type or serial it has no business
    /// with, a stream never opened.
    Unexpected(String),
    /// The client sent something after its close call.
    AfterClose,
    /// A limit was reached (outstanding calls, held calls, streams).
    Limit(&'static str),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Malformed(why) => write!(f, "malformed packet: {why}"),
            End::Unexpected(what) => write!(f, "unexpected packet: {what}"),
            End::AfterClose => write!(f, "bytes after the close call"),
            End::Limit(what) => write!(f, "too many {what}"),
        }
    }
}

impl From<XdrError> for End {
    fn from(error: XdrError) -> End {
        End::Malformed(error.to_string())
    }
}

impl From<wire::FrameError> for End {
    fn from(error: wire::FrameError) -> End {
        End::Malformed(error.to_string())
    }
}

/// How long a UUID → name entry learnt from the daemon serves a read without asking again.
pub const FRESH: Duration = Duration::from_secs(3);
/// Calls forwarded and not yet answered.
pub const MAX_OUTSTANDING: usize = 64;
/// Calls held while their domain is checked again.
pub const MAX_HELD: usize = 16;
/// Bytes of held calls.
pub const MAX_HELD_BYTES: usize = 1024 * 1024;
/// Streams open at once (and recently closed ones still passing their last packets).
pub const MAX_STREAMS: usize = 8;
/// UUIDs remembered: a listing holds at most REMOTE_DOMAIN_LIST_MAX domains.
pub const MAX_LEARNT: usize = 2 * DOMAIN_LIST_MAX as usize;

/// The filter of one connection.
#[derive(Debug)]
pub struct Filter {
    uri: String,
    driver: Driver,
    opened: bool,
    closed: bool,
    next_serial: u32,
    pending: HashMap<u32, Pending>,
    held: usize,
    held_bytes: usize,
    streams: Vec<Stream>,
    learnt: HashMap<Uuid, Learnt>,
}

impl Filter {
    /// A filter for a connection the gateway opens with `uri`, whatever the client asks.
    pub fn new(uri: &str) -> Filter {
        Filter {
            uri: uri.to_string(),
            driver: Driver::of_uri(uri),
            opened: false,
            closed: false,
            next_serial: 1,
            pending: HashMap::new(),
            held: 0,
            held_bytes: 0,
            streams: Vec::new(),
            learnt: HashMap::new(),
        }
    }

    /// Whether the client has sent its close call.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// One whole packet from the client.
    pub fn from_client(
        &mut self,
        packet: Vec<u8>,
        grants: &dyn Grants,
        now: Instant,
    ) -> Result<Vec<Out>, End> {
        if self.closed {
            return Err(End::AfterClose);
        }
        let parsed = Packet::parse(&packet)?;
        let header = parsed.header;
        let mut out = Vec::new();
        match (header.prog, header.kind) {
            (KEEPALIVE_PROGRAM, _) => {
                check_keepalive(&parsed)?;
                out.push(Out::ToDaemon(packet));
            }
            (REMOTE_PROGRAM, _) if header.vers != REMOTE_VERSION => {
                return Err(End::Unexpected(format!(
                    "remote program version {}",
                    header.vers
                )));
            }
            (REMOTE_PROGRAM, Type::Call) => {
                if header.status != Status::Ok {
                    return Err(End::Malformed("a call whose status is not OK".into()));
                }
                let body = parsed.body.to_vec();
                self.call(header, &body, packet, grants, now, &mut out)?;
            }
            (REMOTE_PROGRAM | QEMU_PROGRAM | LXC_PROGRAM, Type::CallWithFds) => {
                let name = format!("{} with file descriptors", program_call_name(&header));
                self.deny(&header, name, None, None, &mut out);
            }
            (QEMU_PROGRAM | LXC_PROGRAM, Type::Call) => {
                let name = program_call_name(&header);
                self.deny(&header, name, None, None, &mut out);
            }
            (REMOTE_PROGRAM, Type::Stream) => {
                self.client_stream(&header, packet, &mut out)?;
            }
            (prog, kind) => {
                return Err(End::Unexpected(format!(
                    "from the client: program {prog:#x}, type {kind:?}"
                )));
            }
        }
        Ok(out)
    }

    /// One whole packet from the daemon.
    pub fn from_daemon(
        &mut self,
        packet: Vec<u8>,
        grants: &dyn Grants,
        now: Instant,
    ) -> Result<Vec<Out>, End> {
        let parsed = Packet::parse(&packet)?;
        let header = parsed.header;
        let mut out = Vec::new();
        match (header.prog, header.kind) {
            (KEEPALIVE_PROGRAM, _) => {
                check_keepalive(&parsed)?;
                out.push(Out::ToClient(packet));
            }
            (REMOTE_PROGRAM, Type::Reply) if header.vers == REMOTE_VERSION => {
                let body = parsed.body.to_vec();
                self.reply(header, &body, packet, grants, now, &mut out)?;
            }
            (REMOTE_PROGRAM, Type::Message) if header.vers == REMOTE_VERSION => {
                let body = parsed.body.to_vec();
                self.event(&header, &body, packet, grants, now, &mut out)?;
            }
            (REMOTE_PROGRAM, Type::Stream) if header.vers == REMOTE_VERSION => {
                self.daemon_stream(&header, packet, &mut out)?;
            }
            (prog, kind) => {
                return Err(End::Unexpected(format!(
                    "from the daemon: program {prog:#x}, type {kind:?}"
                )));
            }
        }
        Ok(out)
    }
}

/// Checks a keepalive packet: a MESSAGE, PING or PONG, version 1, no body.
fn check_keepalive(packet: &Packet<'_>) -> Result<(), End> {
    let h = &packet.header;
    let fits = h.vers == KEEPALIVE_VERSION
        && h.kind == Type::Message
        && h.status == Status::Ok
        && matches!(h.proc, KEEPALIVE_PING | KEEPALIVE_PONG)
        && packet.body.is_empty();
    if fits {
        Ok(())
    } else {
        Err(End::Unexpected(format!("a keepalive packet {h:?}")))
    }
}

/// A procedure of the remote program as audited: its name, or its number if unknown.
fn procedure_label(number: u32) -> String {
    match remote::procedure_name(number) {
        Some(name) => name.to_string(),
        None => format!("unknown procedure {number}"),
    }
}

/// A call of any program as audited.
fn program_call_name(header: &Header) -> String {
    match header.prog {
        QEMU_PROGRAM => format!("qemu program procedure {}", header.proc),
        LXC_PROGRAM => format!("lxc program procedure {}", header.proc),
        _ => procedure_label(header.proc),
    }
}

#[cfg(test)]
mod tests;
