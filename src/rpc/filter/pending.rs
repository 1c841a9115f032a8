//! The calls forwarded to the daemon and waiting for its reply, under serials the filter
//! owns: a client's serial is never reused on the daemon's side, so the lookups the filter
//! injects cannot collide with the client's calls. Each pending call says what its reply
//! is awaited for ([`Await`]); `reply` acts on that.

use crate::rpc::allow::List;
use crate::rpc::remote::{Uuid, proc};
use crate::rpc::wire::{self, Header};

use super::judge::DomainCall;
use super::{End, Filter, MAX_OUTSTANDING, Out};

/// What to do with the daemon's reply to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Await {
    /// Pass it on.
    Plain,
    /// The open call: the connection is open once it succeeds.
    Open,
    /// connect list all domains; whether the client asked for the domains themselves.
    ListAll { wanted: bool },
    /// An old listing answered from a list-all the filter sent in its place.
    OldList { list: List, max: usize },
    /// connect get all domain stats: records filtered.
    Stats,
    /// A lookup: the answer is checked, and a missing or invisible domain answered alike.
    Lookup(LookupOf),
    /// A call that opened a stream (the stream is already registered).
    Stream,
    /// A lookup by UUID the filter injected to check a held call's domain again.
    Recheck(Box<DomainCall>),
}

/// What a lookup asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LookupOf {
    Name(String),
    Uuid(Uuid),
    Id(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pending {
    /// The client's serial; `None` for a call the filter injected.
    pub(super) client_serial: Option<u32>,
    /// The client's header (program, version and procedure for the reply).
    pub(super) header: Header,
    pub(super) then: Await,
}

impl Pending {
    /// The procedure the daemon's reply must be of: what was sent, which for an old
    /// listing or a recheck is not what the client called.
    pub(super) fn reply_proc(&self) -> u32 {
        match self.then {
            Await::OldList { .. } => proc::CONNECT_LIST_ALL_DOMAINS,
            Await::Recheck(_) => proc::DOMAIN_LOOKUP_BY_UUID,
            _ => self.header.proc,
        }
    }
}

impl Filter {
    /// Forwards a client call under a serial of the filter's own.
    pub(super) fn forward(
        &mut self,
        header: Header,
        packet: Vec<u8>,
        then: Await,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        self.send(Some(header.serial), header, packet, then, out)
            .map(|_| ())
    }

    /// Sends a call to the daemon under a fresh serial, which it returns, remembering
    /// what its reply is awaited for.
    pub(super) fn send(
        &mut self,
        client_serial: Option<u32>,
        header: Header,
        mut packet: Vec<u8>,
        then: Await,
        out: &mut Vec<Out>,
    ) -> Result<u32, End> {
        if self.pending.len() >= MAX_OUTSTANDING {
            return Err(End::Limit("outstanding calls"));
        }
        let serial = self.allocate_serial();
        wire::set_serial(&mut packet, serial);
        self.pending.insert(
            serial,
            Pending {
                client_serial,
                header,
                then,
            },
        );
        out.push(Out::ToDaemon(packet));
        Ok(serial)
    }

    fn allocate_serial(&mut self) -> u32 {
        loop {
            let serial = self.next_serial;
            self.next_serial = self.next_serial.wrapping_add(1);
            let taken = self.pending.contains_key(&serial)
                || self.streams.iter().any(|s| s.daemon_serial == serial);
            if !taken {
                return serial;
            }
        }
    }

    /// Whether a call of the client's with this serial is still waiting, forwarded or held.
    pub(super) fn client_serial_in_use(&self, serial: u32) -> bool {
        self.pending.values().any(|p| {
            p.client_serial == Some(serial)
                || matches!(&p.then, Await::Recheck(held) if held.header.serial == serial)
        })
    }
}
