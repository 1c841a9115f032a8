//! The filter's state machine: it sees every whole packet in both directions and answers
//! with what to send where ([`Out`]), or with the [`End`] of the connection.
//!
//! It owns the serial numbers on the daemon's side (so calls it injects never collide with
//! the client's), the UUID → name map learnt from the daemon's answers only, the calls
//! waiting for a reply, and the streams that allowed calls opened. It does no I/O and
//! keeps no clock: the caller passes the time and the current [`Grants`] with every
//! packet, so revocation takes effect on the next packet. Framing is `wire`'s; which
//! procedure is allowed is `allow`'s table.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::action::Action;

use super::allow::{self, Check, EventShape, Events, List, Lookup, Object, Rule};
use super::remote::{
    self, DOMAIN_LIST_MAX, DOMAIN_MIN_SIZE, DOMAIN_STATS_PARAMS_MAX, Domain, KEEPALIVE_PING,
    KEEPALIVE_PONG, KEEPALIVE_PROGRAM, KEEPALIVE_VERSION, LXC_PROGRAM, QEMU_PROGRAM,
    REMOTE_PROGRAM, REMOTE_VERSION, RemoteError, STRING_MAX, Uuid, proc,
};
use super::wire::{self, Header, Packet, Status, Type};
use super::xdr::{Reader, Writer, XdrError};

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
/// The longest client-sent name echoed in an error, in bytes.
const ECHO_MAX: usize = 1024;

/// How the daemon's driver words "no such domain" (the hypervisor's, as the URI names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// qemu (and the default): lookups say which name, UUID or id matched nothing.
    Qemu,
    /// The test driver: lookups say only "Domain not found".
    Test,
}

impl Driver {
    /// The driver a URI names: `test` for `test:///...` and `test+unix://...`.
    pub fn of_uri(uri: &str) -> Driver {
        let scheme = uri.split(':').next().unwrap_or("");
        let driver = scheme.split('+').next().unwrap_or("");
        if driver == "test" {
            Driver::Test
        } else {
            Driver::Qemu
        }
    }

    fn from(self) -> i32 {
        match self {
            Driver::Qemu => remote::VIR_FROM_QEMU,
            Driver::Test => remote::VIR_FROM_TEST,
        }
    }
}

/// What a key needs of a domain for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    See,
    Act(Action),
}

/// What to do with the daemon's reply to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Await {
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
    Recheck(Box<Held>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LookupOf {
    Name(String),
    Uuid(Uuid),
    Id(i32),
}

/// A client call waiting for its domain to be checked again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    packet: Vec<u8>,
    header: Header,
    need: Need,
    uuid: Uuid,
    client_name: String,
    then: Await,
    stream: Option<StreamKind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    /// The client's serial; `None` for a call the filter injected.
    client_serial: Option<u32>,
    /// The client's header (program, version and procedure for the reply).
    header: Header,
    then: Await,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    /// Data from the daemon only.
    Screenshot,
    /// Data both ways.
    Console,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stream {
    kind: StreamKind,
    proc: u32,
    client_serial: u32,
    daemon_serial: u32,
    /// The client sent its finish or abort: it sends nothing more.
    client_done: bool,
    /// The daemon sent an end or an error.
    daemon_done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Learnt {
    name: String,
    at: Instant,
}

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

/// What a call's domain argument said.
struct DomainArg {
    uuid: Uuid,
    name: String,
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

    /// Whether the name the daemon gave this UUID is known (for tests and the fuzzer's
    /// invariant).
    pub fn learnt_name(&self, uuid: &Uuid) -> Option<&str> {
        self.learnt.get(uuid).map(|l| l.name.as_str())
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

    // ---- calls from the client ----

    fn call(
        &mut self,
        header: Header,
        body: &[u8],
        packet: Vec<u8>,
        grants: &dyn Grants,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        if self.client_serial_in_use(header.serial) {
            return Err(End::Unexpected(format!(
                "a second call with serial {}",
                header.serial
            )));
        }
        let name = procedure_label(header.proc);
        let Some(rule) = allow::rule(header.proc) else {
            self.deny(&header, name, None, None, out);
            return Ok(());
        };
        match rule {
            Rule::Connection => self.forward(header, packet, Await::Plain, out),
            Rule::Open => {
                let mut r = Reader::new(body);
                if r.optional()? {
                    r.string(STRING_MAX)?;
                }
                let flags = r.u32()?;
                r.finish()?;
                if self.opened {
                    self.deny(&header, name, None, None, out);
                    return Ok(());
                }
                let mut w = Writer::new();
                w.optional_string(Some(&self.uri))
                    .u32(flags & allow::CONNECT_RO);
                let packet = wire::encode(&header, &w.into_bytes());
                self.forward(header, packet, Await::Open, out)
            }
            Rule::Close => {
                self.closed = true;
                self.forward(header, packet, Await::Plain, out)
            }
            Rule::DomainCapabilities => {
                let mut r = Reader::new(body);
                if r.optional()? {
                    self.deny(&header, name, None, None, out);
                    return Ok(());
                }
                self.forward(header, packet, Await::Plain, out)
            }
            Rule::List(list) => self.list(header, body, packet, list, grants, out),
            Rule::Lookup(lookup) => self.lookup(header, body, packet, lookup, grants, out),
            Rule::Read(object) => {
                let mut r = Reader::new(body);
                let dom = read_object(&mut r, object)?;
                self.judge(
                    header,
                    packet,
                    dom,
                    Need::See,
                    Await::Plain,
                    None,
                    grants,
                    now,
                    out,
                )
            }
            Rule::XmlDesc { object, keep } => {
                let mut r = Reader::new(body);
                let dom = read_object(&mut r, object)?;
                let flags_at = r.position();
                let flags = r.u32()?;
                r.finish()?;
                let flags = flags & !allow::XML_SECURE;
                if flags & !keep != 0 {
                    let domain = self.known_name(&dom.uuid);
                    self.deny(&header, name, None, domain, out);
                    return Ok(());
                }
                let mut packet = packet;
                let at = wire::PACKET_MIN + flags_at;
                if let Some(slot) = packet.get_mut(at..at + 4) {
                    slot.copy_from_slice(&flags.to_be_bytes());
                }
                self.judge(
                    header,
                    packet,
                    dom,
                    Need::See,
                    Await::Plain,
                    None,
                    grants,
                    now,
                    out,
                )
            }
            Rule::Act(action, check) => {
                let mut r = Reader::new(body);
                let dom = read_object(&mut r, Object::Domain)?;
                let (fits, stream) = check_arguments(&mut r, check)?;
                if !fits {
                    let domain = Some(self.known_name(&dom.uuid).unwrap_or(dom.name));
                    self.deny(&header, name, Some(action), domain, out);
                    return Ok(());
                }
                let then = if stream.is_some() {
                    Await::Stream
                } else {
                    Await::Plain
                };
                self.judge(
                    header,
                    packet,
                    dom,
                    Need::Act(action),
                    then,
                    stream,
                    grants,
                    now,
                    out,
                )
            }
            Rule::Events(Events::Plain) => self.forward(header, packet, Await::Plain, out),
            Rule::Events(Events::CallbackRegister) => {
                let mut r = Reader::new(body);
                r.i32()?;
                let dom = if r.optional()? {
                    Some(read_domain_arg(&mut r)?)
                } else {
                    None
                };
                r.finish()?;
                match dom {
                    None => self.forward(header, packet, Await::Plain, out),
                    Some(dom) => self.judge(
                        header,
                        packet,
                        dom,
                        Need::See,
                        Await::Plain,
                        None,
                        grants,
                        now,
                        out,
                    ),
                }
            }
        }
    }

    fn list(
        &mut self,
        header: Header,
        body: &[u8],
        packet: Vec<u8>,
        list: List,
        grants: &dyn Grants,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let mut r = Reader::new(body);
        let (flags, max) = match list {
            List::All => {
                let need_results = r.i32()?;
                let flags = r.u32()?;
                r.finish()?;
                // Always ask for the domains: a bare count would count the invisible ones.
                let mut w = Writer::new();
                w.i32(1).u32(flags);
                let packet = wire::encode(&header, &w.into_bytes());
                let then = Await::ListAll {
                    wanted: need_results != 0,
                };
                return self.forward(header, packet, then, out);
            }
            List::Stats => {
                let count = r.count(DOMAIN_LIST_MAX, DOMAIN_MIN_SIZE)?;
                let mut doms = Vec::new();
                for _ in 0..count {
                    doms.push(read_domain_arg(&mut r)?);
                }
                r.u32()?;
                r.u32()?;
                r.finish()?;
                for dom in doms {
                    // A named domain must be known and visible. Its name may be stale: the
                    // records name their domains as the daemon knows them now, and are
                    // filtered by those names.
                    let visible = self
                        .learnt
                        .get(&dom.uuid)
                        .is_some_and(|l| grants.may_see(&l.name));
                    if !visible {
                        let error = self.object_not_found(&dom);
                        self.answer_error(&header, &error, out);
                        return Ok(());
                    }
                }
                return self.forward(header, packet, Await::Stats, out);
            }
            List::NumActive => (allow::LIST_ACTIVE, 0),
            List::NumInactive => (allow::LIST_INACTIVE, 0),
            List::ActiveIds => (allow::LIST_ACTIVE, usize::try_from(r.i32()?).unwrap_or(0)),
            List::InactiveNames => (allow::LIST_INACTIVE, usize::try_from(r.i32()?).unwrap_or(0)),
        };
        r.finish()?;
        let mut w = Writer::new();
        w.i32(1).u32(flags);
        let instead = Header {
            proc: proc::CONNECT_LIST_ALL_DOMAINS,
            ..header
        };
        let packet = wire::encode(&instead, &w.into_bytes());
        let max = max.min(DOMAIN_LIST_MAX as usize);
        self.forward(header, packet, Await::OldList { list, max }, out)
    }

    fn lookup(
        &mut self,
        header: Header,
        body: &[u8],
        packet: Vec<u8>,
        lookup: Lookup,
        grants: &dyn Grants,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let mut r = Reader::new(body);
        let of = match lookup {
            Lookup::ByName => LookupOf::Name(r.string(STRING_MAX)?.to_string()),
            Lookup::ByUuid => LookupOf::Uuid(Uuid::read(&mut r)?),
            Lookup::ById => LookupOf::Id(r.i32()?),
        };
        r.finish()?;
        if let LookupOf::Name(name) = &of {
            if !grants.may_see(name) {
                let error = self.lookup_not_found(&of);
                self.answer_error(&header, &error, out);
                out.push(Out::Audit(Call {
                    procedure: procedure_label(header.proc),
                    action: None,
                    domain: Some(bounded(name).to_string()),
                    allowed: false,
                }));
                return Ok(());
            }
        }
        self.forward(header, packet, Await::Lookup(of), out)
    }

    /// Judges a call on one domain by its UUID: forwards it, holds it while the domain is
    /// checked again, or answers it.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &mut self,
        header: Header,
        packet: Vec<u8>,
        dom: DomainArg,
        need: Need,
        then: Await,
        stream: Option<StreamKind>,
        grants: &dyn Grants,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let known = self.learnt.get(&dom.uuid).cloned();
        let Some(known) = known else {
            // Never learnt from the daemon: the key cannot have reached it by a listing or
            // a lookup, so it is a domain it may not see (or none at all).
            return self.refuse(&header, &dom, need, None, false, out);
        };
        let fresh = now.saturating_duration_since(known.at) < FRESH;
        match need {
            Need::See if fresh => {
                if grants.may_see(&known.name) {
                    self.forward_judged(header, packet, then, stream, out)
                } else {
                    self.refuse(&header, &dom, need, Some(known.name), false, out)
                }
            }
            Need::Act(_) if !grants.may_see(&known.name) => {
                self.refuse(&header, &dom, need, Some(known.name), false, out)
            }
            _ => self.hold(header, packet, dom, need, then, stream, out),
        }
    }

    /// Answers a judged call that may not go on, and audits it: a domain the key may not
    /// see (or an unknown UUID) gets the error of a missing one, a visible one without the
    /// command gets access denied. `known` is the daemon's name for the UUID, if learnt.
    fn refuse(
        &mut self,
        header: &Header,
        dom: &DomainArg,
        need: Need,
        known: Option<String>,
        visible: bool,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let action = match need {
            Need::Act(action) => Some(action),
            Need::See => None,
        };
        let name = procedure_label(header.proc);
        let domain = Some(known.unwrap_or_else(|| bounded(&dom.name).to_string()));
        if visible {
            self.deny(header, name, action, domain, out);
        } else {
            let error = self.object_not_found(dom);
            self.answer_error(header, &error, out);
            out.push(Out::Audit(Call {
                procedure: name,
                action,
                domain,
                allowed: false,
            }));
        }
        Ok(())
    }

    /// Holds a call and asks the daemon which domain its UUID is now.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        header: Header,
        packet: Vec<u8>,
        dom: DomainArg,
        need: Need,
        then: Await,
        stream: Option<StreamKind>,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        if self.held >= MAX_HELD || self.held_bytes.saturating_add(packet.len()) > MAX_HELD_BYTES {
            return Err(End::Limit("held calls"));
        }
        self.held += 1;
        self.held_bytes += packet.len();
        let mut w = Writer::new();
        w.opaque_fixed(&dom.uuid.0);
        let lookup = Header {
            prog: REMOTE_PROGRAM,
            vers: REMOTE_VERSION,
            proc: proc::DOMAIN_LOOKUP_BY_UUID,
            kind: Type::Call,
            serial: 0,
            status: Status::Ok,
        };
        let injected = wire::encode(&lookup, &w.into_bytes());
        let held = Held {
            packet,
            header,
            need,
            uuid: dom.uuid,
            client_name: dom.name,
            then,
            stream,
        };
        self.send(None, lookup, injected, Await::Recheck(Box::new(held)), out)
            .map(|_| ())
    }

    /// Forwards a call whose domain was judged, registering the stream it opens.
    fn forward_judged(
        &mut self,
        header: Header,
        packet: Vec<u8>,
        then: Await,
        stream: Option<StreamKind>,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let serial = self.send(Some(header.serial), header, packet, then, out)?;
        if let Some(kind) = stream {
            self.open_stream(kind, header.proc, header.serial, serial)?;
        }
        Ok(())
    }

    /// Forwards a client call under a serial of the filter's own.
    fn forward(
        &mut self,
        header: Header,
        packet: Vec<u8>,
        then: Await,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        self.send(Some(header.serial), header, packet, then, out)
            .map(|_| ())
    }

    fn send(
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

    fn client_serial_in_use(&self, serial: u32) -> bool {
        self.pending.values().any(|p| {
            p.client_serial == Some(serial)
                || matches!(&p.then, Await::Recheck(held) if held.header.serial == serial)
        })
    }

    /// Answers a call with libvirt's access-denied error, and audits it.
    fn deny(
        &self,
        header: &Header,
        procedure: String,
        action: Option<Action>,
        domain: Option<String>,
        out: &mut Vec<Out>,
    ) {
        let error = RemoteError::reported(
            remote::VIR_ERR_ACCESS_DENIED,
            remote::VIR_FROM_ACCESS,
            "access denied: %s",
            Some("'dromaius' denied access"),
        );
        self.answer_error(header, &error, out);
        out.push(Out::Audit(Call {
            procedure,
            action,
            domain,
            allowed: false,
        }));
    }

    fn answer_error(&self, header: &Header, error: &RemoteError, out: &mut Vec<Out>) {
        let reply = Header {
            kind: Type::Reply,
            status: Status::Error,
            ..*header
        };
        out.push(Out::ToClient(wire::encode(&reply, &error.to_bytes())));
    }

    /// The error a lookup of a missing domain gets from the daemon's driver.
    fn lookup_not_found(&self, of: &LookupOf) -> RemoteError {
        let detail = match (self.driver, of) {
            (Driver::Test, _) => None,
            (Driver::Qemu, LookupOf::Name(name)) => {
                Some(format!("no domain with matching name '{}'", bounded(name)))
            }
            (Driver::Qemu, LookupOf::Uuid(uuid)) => {
                Some(format!("no domain with matching uuid '{uuid}'"))
            }
            (Driver::Qemu, LookupOf::Id(id)) => Some(format!("no domain with matching id {id}")),
        };
        not_found(self.driver, detail.as_deref())
    }

    /// The error a call on a missing domain gets from the daemon's driver (both say which
    /// UUID, and the name the client sent with it).
    fn object_not_found(&self, dom: &DomainArg) -> RemoteError {
        let detail = format!(
            "no domain with matching uuid '{}' ({})",
            dom.uuid,
            bounded(&dom.name)
        );
        not_found(self.driver, Some(&detail))
    }

    fn known_name(&self, uuid: &Uuid) -> Option<String> {
        self.learnt.get(uuid).map(|l| l.name.clone())
    }

    fn learn(&mut self, dom: &Domain, now: Instant) {
        if self.learnt.len() >= MAX_LEARNT && !self.learnt.contains_key(&dom.uuid) {
            // Forget what is stale first; if all is fresh, forget all: a forgotten UUID
            // is only asked again.
            self.learnt
                .retain(|_, l| now.saturating_duration_since(l.at) < FRESH);
            if self.learnt.len() >= MAX_LEARNT {
                self.learnt.clear();
            }
        }
        self.learnt.insert(
            dom.uuid,
            Learnt {
                name: dom.name.clone(),
                at: now,
            },
        );
    }

    // ---- streams ----

    fn open_stream(
        &mut self,
        kind: StreamKind,
        proc: u32,
        client_serial: u32,
        daemon_serial: u32,
    ) -> Result<(), End> {
        if self.streams.len() >= MAX_STREAMS {
            // Make room by forgetting the oldest stream both sides have finished.
            match self
                .streams
                .iter()
                .position(|s| s.client_done && s.daemon_done)
            {
                Some(index) => {
                    self.streams.remove(index);
                }
                None => return Err(End::Limit("streams")),
            }
        }
        self.streams.push(Stream {
            kind,
            proc,
            client_serial,
            daemon_serial,
            client_done: false,
            daemon_done: false,
        });
        Ok(())
    }

    fn client_stream(
        &mut self,
        header: &Header,
        mut packet: Vec<u8>,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let Some(stream) = self
            .streams
            .iter_mut()
            .find(|s| s.client_serial == header.serial && s.proc == header.proc)
        else {
            return Err(End::Unexpected(format!(
                "a stream packet for serial {} the client never opened",
                header.serial
            )));
        };
        if stream.client_done {
            return Err(End::Unexpected("a stream packet after its finish".into()));
        }
        match header.status {
            Status::Continue if stream.kind == StreamKind::Console => {}
            Status::Continue => {
                return Err(End::Unexpected("data sent into a screenshot".into()));
            }
            Status::Ok | Status::Error => stream.client_done = true,
        }
        wire::set_serial(&mut packet, stream.daemon_serial);
        out.push(Out::ToDaemon(packet));
        Ok(())
    }

    fn daemon_stream(
        &mut self,
        header: &Header,
        mut packet: Vec<u8>,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let Some(stream) = self
            .streams
            .iter_mut()
            .find(|s| s.daemon_serial == header.serial && s.proc == header.proc)
        else {
            return Err(End::Unexpected(format!(
                "stream data for serial {} no allowed call opened",
                header.serial
            )));
        };
        if header.status != Status::Continue {
            stream.daemon_done = true;
        }
        wire::set_serial(&mut packet, stream.client_serial);
        out.push(Out::ToClient(packet));
        Ok(())
    }

    // ---- replies and events from the daemon ----

    fn reply(
        &mut self,
        header: Header,
        body: &[u8],
        mut packet: Vec<u8>,
        grants: &dyn Grants,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let Some(pending) = self.pending.remove(&header.serial) else {
            // A stream's error after its call was answered comes as a reply too.
            if let Some(index) = self
                .streams
                .iter()
                .position(|s| s.daemon_serial == header.serial && s.proc == header.proc)
            {
                let stream = self.streams.remove(index);
                wire::set_serial(&mut packet, stream.client_serial);
                out.push(Out::ToClient(packet));
                return Ok(());
            }
            return Err(End::Unexpected(format!(
                "a reply to serial {} that was never sent",
                header.serial
            )));
        };
        let expected = if matches!(pending.then, Await::OldList { .. }) {
            proc::CONNECT_LIST_ALL_DOMAINS
        } else if matches!(pending.then, Await::Recheck(_)) {
            proc::DOMAIN_LOOKUP_BY_UUID
        } else {
            pending.header.proc
        };
        if header.proc != expected {
            return Err(End::Unexpected(format!(
                "a reply of procedure {} to a call of {}",
                header.proc, expected
            )));
        }
        let Some(client_serial) = pending.client_serial else {
            let Await::Recheck(held) = pending.then else {
                return Err(End::Unexpected("an injected call of no kind".into()));
            };
            return self.recheck(*held, header.status, body, grants, now, out);
        };
        let to_client = Header {
            serial: client_serial,
            ..pending.header
        };
        let to_client = Header {
            kind: Type::Reply,
            status: header.status,
            ..to_client
        };
        if header.status == Status::Error {
            return self.error_reply(&to_client, pending.then, body, out);
        }
        if header.status != Status::Ok {
            return Err(End::Malformed("a reply whose status is CONTINUE".into()));
        }
        match pending.then {
            Await::Plain | Await::Stream => {
                wire::set_serial(&mut packet, client_serial);
                out.push(Out::ToClient(packet));
            }
            Await::Open => {
                self.opened = true;
                wire::set_serial(&mut packet, client_serial);
                out.push(Out::ToClient(packet));
            }
            Await::ListAll { wanted } => {
                let visible = self.visible_domains(body, grants, now)?;
                let mut w = Writer::new();
                if wanted {
                    w.u32(visible.len() as u32);
                    for dom in &visible {
                        dom.write(&mut w);
                    }
                } else {
                    w.u32(0);
                }
                w.u32(visible.len() as u32);
                out.push(Out::ToClient(wire::encode(&to_client, &w.into_bytes())));
            }
            Await::OldList { list, max } => {
                let visible = self.visible_domains(body, grants, now)?;
                let mut w = Writer::new();
                match list {
                    List::NumActive | List::NumInactive => {
                        w.i32(visible.len() as i32);
                    }
                    List::ActiveIds => {
                        let ids: Vec<i32> = visible.iter().take(max).map(|d| d.id).collect();
                        w.u32(ids.len() as u32);
                        for id in ids {
                            w.i32(id);
                        }
                    }
                    List::InactiveNames | List::All | List::Stats => {
                        let names: Vec<&str> =
                            visible.iter().take(max).map(|d| d.name.as_str()).collect();
                        w.u32(names.len() as u32);
                        for name in names {
                            w.string(name);
                        }
                    }
                }
                out.push(Out::ToClient(wire::encode(&to_client, &w.into_bytes())));
            }
            Await::Stats => {
                let body = self.visible_stats(body, grants, now)?;
                out.push(Out::ToClient(wire::encode(&to_client, &body)));
            }
            Await::Lookup(of) => {
                let mut r = Reader::new(body);
                let dom = Domain::read(&mut r)?;
                r.finish()?;
                let answers = match &of {
                    LookupOf::Name(name) => dom.name == *name,
                    LookupOf::Uuid(uuid) => dom.uuid == *uuid,
                    LookupOf::Id(_) => true,
                };
                if !answers {
                    return Err(End::Unexpected(
                        "a lookup answered for another domain".into(),
                    ));
                }
                self.learn(&dom, now);
                if grants.may_see(&dom.name) {
                    wire::set_serial(&mut packet, client_serial);
                    out.push(Out::ToClient(packet));
                } else {
                    let error = self.lookup_not_found(&of);
                    self.answer_error(&to_client, &error, out);
                    out.push(Out::Audit(Call {
                        procedure: procedure_label(to_client.proc),
                        action: None,
                        domain: Some(dom.name),
                        allowed: false,
                    }));
                }
            }
            Await::Recheck(_) => {
                return Err(End::Unexpected("a client call awaiting a recheck".into()));
            }
        }
        Ok(())
    }

    /// An error reply to a client's call: a lookup's missing domain is worded by the
    /// filter (so it matches an invisible one byte for byte), a stream's call failing
    /// closes the stream; anything else passes on.
    fn error_reply(
        &mut self,
        to_client: &Header,
        then: Await,
        body: &[u8],
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let (code, _) = RemoteError::read_code(body)?;
        match then {
            Await::Lookup(of) if code == remote::VIR_ERR_NO_DOMAIN => {
                let error = self.lookup_not_found(&of);
                self.answer_error(to_client, &error, out);
                return Ok(());
            }
            Await::Stream => {
                self.streams.retain(|s| s.client_serial != to_client.serial);
            }
            _ => {}
        }
        out.push(Out::ToClient(wire::encode(to_client, body)));
        Ok(())
    }

    /// The daemon answered the lookup injected for a held call: the call goes on, or is
    /// answered, by what the UUID is now.
    fn recheck(
        &mut self,
        held: Held,
        status: Status,
        body: &[u8],
        grants: &dyn Grants,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        self.held = self.held.saturating_sub(1);
        self.held_bytes = self.held_bytes.saturating_sub(held.packet.len());
        let dom = DomainArg {
            uuid: held.uuid,
            name: held.client_name.clone(),
        };
        match status {
            Status::Ok => {
                let mut r = Reader::new(body);
                let found = Domain::read(&mut r)?;
                r.finish()?;
                if found.uuid != held.uuid {
                    return Err(End::Unexpected("a lookup answered for another UUID".into()));
                }
                self.learn(&found, now);
                let visible = grants.may_see(&found.name);
                let allowed = visible
                    && match held.need {
                        Need::See => true,
                        Need::Act(action) => grants.may(action, &found.name),
                    };
                if !allowed {
                    let known = Some(found.name.clone());
                    return self.refuse(&held.header, &dom, held.need, known, visible, out);
                }
                if let Need::Act(action) = held.need {
                    out.push(Out::Audit(Call {
                        procedure: procedure_label(held.header.proc),
                        action: Some(action),
                        domain: Some(found.name.clone()),
                        allowed: true,
                    }));
                }
                self.forward_judged(held.header, held.packet, held.then, held.stream, out)
            }
            Status::Error => {
                let (code, _) = RemoteError::read_code(body)?;
                if code == remote::VIR_ERR_NO_DOMAIN {
                    self.learnt.remove(&held.uuid);
                    return self.refuse(&held.header, &dom, held.need, None, false, out);
                }
                // Any other failure (the connection not open yet, say) is the call's.
                let to_client = Header {
                    kind: Type::Reply,
                    status: Status::Error,
                    ..held.header
                };
                out.push(Out::ToClient(wire::encode(&to_client, body)));
                Ok(())
            }
            Status::Continue => Err(End::Malformed("a reply whose status is CONTINUE".into())),
        }
    }

    /// The domains of a list-all reply the key may see, learning every UUID.
    fn visible_domains(
        &mut self,
        body: &[u8],
        grants: &dyn Grants,
        now: Instant,
    ) -> Result<Vec<Domain>, End> {
        let mut r = Reader::new(body);
        let count = r.count(DOMAIN_LIST_MAX, DOMAIN_MIN_SIZE)?;
        let mut visible = Vec::new();
        for _ in 0..count {
            let dom = Domain::read(&mut r)?;
            self.learn(&dom, now);
            if grants.may_see(&dom.name) {
                visible.push(dom);
            }
        }
        r.u32()?;
        r.finish()?;
        Ok(visible)
    }

    /// A stats reply with only the records of visible domains.
    fn visible_stats(
        &mut self,
        body: &[u8],
        grants: &dyn Grants,
        now: Instant,
    ) -> Result<Vec<u8>, End> {
        let mut r = Reader::new(body);
        let count = r.count(DOMAIN_LIST_MAX, DOMAIN_MIN_SIZE + 4)?;
        let mut kept = Vec::new();
        for _ in 0..count {
            let start = r.position();
            let dom = Domain::read(&mut r)?;
            let params = r.count(DOMAIN_STATS_PARAMS_MAX, 12)?;
            for _ in 0..params {
                remote::skip_typed_param(&mut r)?;
            }
            self.learn(&dom, now);
            if grants.may_see(&dom.name) {
                kept.push((start, r.position()));
            }
        }
        r.finish()?;
        let mut w = Writer::new();
        w.u32(kept.len() as u32);
        for (start, end) in kept {
            w.raw(body.get(start..end).unwrap_or_default());
        }
        Ok(w.into_bytes())
    }

    fn event(
        &mut self,
        header: &Header,
        body: &[u8],
        packet: Vec<u8>,
        grants: &dyn Grants,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let Some(shape) = allow::event_shape(header.proc) else {
            return Ok(()); // an event of a kind the filter does not know: dropped
        };
        let mut r = Reader::new(body);
        match shape {
            EventShape::Connection => {
                out.push(Out::ToClient(packet));
                return Ok(());
            }
            EventShape::Domain => {}
            EventShape::Callback => {
                r.i32()?;
            }
            EventShape::CallbackReason => {
                r.i32()?;
                r.i32()?;
            }
        }
        let dom = Domain::read(&mut r)?;
        self.learn(&dom, now);
        if grants.may_see(&dom.name) {
            out.push(Out::ToClient(packet));
        }
        Ok(())
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

/// Reads a call's domain argument: the domain first, or a snapshot's or checkpoint's
/// domain after its name.
fn read_object(r: &mut Reader<'_>, object: Object) -> Result<DomainArg, End> {
    if object == Object::Child {
        r.string(STRING_MAX)?;
    }
    read_domain_arg(r)
}

fn read_domain_arg(r: &mut Reader<'_>) -> Result<DomainArg, End> {
    let dom = Domain::read(r)?;
    Ok(DomainArg {
        uuid: dom.uuid,
        name: dom.name,
    })
}

/// Whether an action's arguments after the domain fit its check, and which stream the
/// call opens. A body that does not parse ends the connection.
fn check_arguments(r: &mut Reader<'_>, check: Check) -> Result<(bool, Option<StreamKind>), End> {
    let result = match check {
        Check::Bare => (true, None),
        Check::Flags(mask) => (r.u32()? & !mask == 0, None),
        Check::SendKey => {
            let codeset = r.u32()?;
            let _holdtime = r.u32()?;
            let count = r.count(remote::SEND_KEY_MAX, 4)?;
            let mut keys = Vec::new();
            for _ in 0..count {
                keys.push(r.u32()?);
            }
            let _flags = r.u32()?;
            keys.sort_unstable();
            let mut wanted = allow::CTRL_ALT_DEL;
            wanted.sort_unstable();
            (codeset == allow::KEYCODE_SET_LINUX && keys == wanted, None)
        }
        Check::Screenshot => {
            let _screen = r.u32()?;
            (r.u32()? == 0, Some(StreamKind::Screenshot))
        }
        Check::Console => {
            if r.optional()? {
                r.string(STRING_MAX)?;
            }
            let flags = r.u32()?;
            let fits = flags & allow::CONSOLE_FORCE == 0 && flags & !allow::CONSOLE_SAFE == 0;
            (fits, Some(StreamKind::Console))
        }
    };
    r.finish()?;
    Ok(result)
}

/// libvirt's "Domain not found" error of the driver, with or without its detail.
fn not_found(driver: Driver, detail: Option<&str>) -> RemoteError {
    let template = if detail.is_some() {
        "Domain not found: %s"
    } else {
        "Domain not found"
    };
    RemoteError::reported(remote::VIR_ERR_NO_DOMAIN, driver.from(), template, detail)
}

/// A client-sent name as echoed in an error: whole, unless absurdly long.
fn bounded(name: &str) -> &str {
    if name.len() <= ECHO_MAX {
        return name;
    }
    let mut end = ECHO_MAX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn procedure_label(number: u32) -> String {
    match remote::procedure_name(number) {
        Some(name) => name.to_string(),
        None => format!("unknown procedure {number}"),
    }
}

fn program_call_name(header: &Header) -> String {
    match header.prog {
        QEMU_PROGRAM => format!("qemu program procedure {}", header.proc),
        LXC_PROGRAM => format!("lxc program procedure {}", header.proc),
        _ => procedure_label(header.proc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grants over fixed names: `see` may be seen, `act` pairs may be done.
    struct Fake {
        see: Vec<&'static str>,
        act: Vec<(Action, &'static str)>,
    }

    impl Grants for Fake {
        fn may_see(&self, name: &str) -> bool {
            self.see.contains(&name)
        }
        fn may(&self, action: Action, name: &str) -> bool {
            self.act.contains(&(action, name))
        }
    }

    fn alice() -> Fake {
        Fake {
            see: vec!["web1", "web2"],
            act: vec![(Action::Start, "web1"), (Action::Console, "web1")],
        }
    }

    fn nobody() -> Fake {
        Fake {
            see: vec![],
            act: vec![],
        }
    }

    fn dom(name: &str, n: u8, id: i32) -> Domain {
        Domain {
            name: name.into(),
            uuid: Uuid([n; 16]),
            id,
        }
    }

    fn web1() -> Domain {
        dom("web1", 1, 3)
    }
    fn db1() -> Domain {
        dom("db1", 2, 4)
    }

    fn packet(
        prog: u32,
        proc: u32,
        kind: Type,
        serial: u32,
        status: Status,
        body: &[u8],
    ) -> Vec<u8> {
        let header = Header {
            prog,
            vers: 1,
            proc,
            kind,
            serial,
            status,
        };
        wire::encode(&header, body)
    }

    fn call(proc: u32, serial: u32, body: &[u8]) -> Vec<u8> {
        packet(REMOTE_PROGRAM, proc, Type::Call, serial, Status::Ok, body)
    }

    fn reply(proc: u32, serial: u32, body: &[u8]) -> Vec<u8> {
        packet(REMOTE_PROGRAM, proc, Type::Reply, serial, Status::Ok, body)
    }

    fn error_reply(proc: u32, serial: u32, error: &RemoteError) -> Vec<u8> {
        packet(
            REMOTE_PROGRAM,
            proc,
            Type::Reply,
            serial,
            Status::Error,
            &error.to_bytes(),
        )
    }

    fn body(build: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::new();
        build(&mut w);
        w.into_bytes()
    }

    fn dom_body(d: &Domain) -> Vec<u8> {
        body(|w| d.write(w))
    }

    fn dom_flags(d: &Domain, flags: u32) -> Vec<u8> {
        body(|w| {
            d.write(w);
            w.u32(flags);
        })
    }

    fn list_all_reply(doms: &[Domain]) -> Vec<u8> {
        body(|w| {
            w.u32(doms.len() as u32);
            for d in doms {
                d.write(w);
            }
            w.u32(doms.len() as u32);
        })
    }

    fn parse(bytes: &[u8]) -> Packet<'_> {
        Packet::parse(bytes).expect("a well-formed packet")
    }

    /// The packets for the daemon, the packets for the client, the audit records.
    fn split(out: &[Out]) -> (Vec<&Vec<u8>>, Vec<&Vec<u8>>, Vec<&Call>) {
        let (mut d, mut c, mut a) = (Vec::new(), Vec::new(), Vec::new());
        for o in out {
            match o {
                Out::ToDaemon(p) => d.push(p),
                Out::ToClient(p) => c.push(p),
                Out::Audit(call) => a.push(call),
            }
        }
        (d, c, a)
    }

    fn error_of(bytes: &[u8]) -> (i32, i32, String) {
        let p = parse(bytes);
        assert_eq!(p.header.kind, Type::Reply);
        assert_eq!(p.header.status, Status::Error);
        let mut r = Reader::new(p.body);
        let code = r.i32().unwrap();
        let from = r.i32().unwrap();
        assert!(r.optional().unwrap());
        (code, from, r.string(STRING_MAX).unwrap().to_string())
    }

    const DENIED: &str = "access denied: 'dromaius' denied access";

    struct Session {
        filter: Filter,
        now: Instant,
    }

    impl Session {
        fn new(uri: &str) -> Session {
            Session {
                filter: Filter::new(uri),
                now: Instant::now(),
            }
        }

        fn client(&mut self, bytes: Vec<u8>, grants: &Fake) -> Result<Vec<Out>, End> {
            self.filter.from_client(bytes, grants, self.now)
        }

        fn daemon(&mut self, bytes: Vec<u8>, grants: &Fake) -> Result<Vec<Out>, End> {
            self.filter.from_daemon(bytes, grants, self.now)
        }

        /// Sends a call that must be forwarded as it is; returns the daemon's serial.
        fn forwarded(&mut self, bytes: Vec<u8>, grants: &Fake) -> u32 {
            let out = self.client(bytes, grants).expect("no end");
            let (d, c, _) = split(&out);
            assert_eq!((d.len(), c.len()), (1, 0), "{out:?}");
            parse(d[0]).header.serial
        }

        /// Teaches the filter the domains, as a listing of them would.
        fn learn(&mut self, doms: &[Domain], grants: &Fake) {
            let serial = self.forwarded(
                call(
                    proc::CONNECT_LIST_ALL_DOMAINS,
                    900,
                    &body(|w| {
                        w.i32(1).u32(0);
                    }),
                ),
                grants,
            );
            self.daemon(
                reply(
                    proc::CONNECT_LIST_ALL_DOMAINS,
                    serial,
                    &list_all_reply(doms),
                ),
                grants,
            )
            .expect("a listing");
        }
    }

    #[test]
    fn open_goes_to_the_gateways_uri_keeping_only_read_only() {
        let grants = alice();
        for (asked, flags, sent_flags) in [
            (Some("qemu+ssh://x/system?socket=/evil"), 0u32, 0u32),
            (None, 1, 1),
            (Some("test:///default"), 3, 1),
        ] {
            let mut s = Session::new("qemu:///system");
            let body = body(|w| {
                w.optional_string(asked).u32(flags);
            });
            let out = s
                .client(call(proc::CONNECT_OPEN, 1, &body), &grants)
                .unwrap();
            let (d, _, _) = split(&out);
            let sent = parse(d[0]);
            let mut r = Reader::new(sent.body);
            assert!(r.optional().unwrap());
            assert_eq!(r.string(100).unwrap(), "qemu:///system");
            assert_eq!(r.u32().unwrap(), sent_flags);
            assert_eq!(r.finish(), Ok(()));
        }
    }

    #[test]
    fn everything_off_the_list_is_denied_by_the_filter_itself() {
        let grants = alice();
        let cases: &[(u32, u32, Type)] = &[
            (REMOTE_PROGRAM, 11, Type::Call), // DOMAIN_DEFINE_XML
            (REMOTE_PROGRAM, 35, Type::Call), // DOMAIN_UNDEFINE
            (REMOTE_PROGRAM, 31, Type::Call), // DOMAIN_SET_MEMORY
            (REMOTE_PROGRAM, 38, Type::Call), // CONNECT_LIST_NETWORKS
            (REMOTE_PROGRAM, 58, Type::Call), // DOMAIN_SET_SCHEDULER_PARAMETERS
            (REMOTE_PROGRAM, 99_999, Type::Call),
            (REMOTE_PROGRAM, 14, Type::CallWithFds),
            (QEMU_PROGRAM, 1, Type::Call),
            (LXC_PROGRAM, 1, Type::Call),
            (QEMU_PROGRAM, 1, Type::CallWithFds),
        ];
        for &(prog, number, kind) in cases {
            let mut s = Session::new("qemu:///system");
            let bytes = packet(prog, number, kind, 7, Status::Ok, &dom_body(&web1()));
            let out = s.client(bytes, &grants).unwrap();
            let (d, c, a) = split(&out);
            assert!(d.is_empty(), "{prog:#x} {number} forwarded");
            let (code, from, message) = error_of(c[0]);
            assert_eq!((code, from), (88, 55));
            assert_eq!(message, DENIED);
            assert_eq!(parse(c[0]).header.serial, 7);
            assert_eq!(parse(c[0]).header.prog, prog);
            assert!(!a[0].allowed);
        }
    }

    #[test]
    fn what_is_not_libvirts_protocol_ends_the_connection() {
        let grants = alice();
        let mut garbage = call(3, 1, b"");
        garbage[16..20].copy_from_slice(&9u32.to_be_bytes());
        let cases: Vec<Vec<u8>> = vec![
            packet(0x1234_5678, 1, Type::Call, 1, Status::Ok, b""),
            packet(REMOTE_PROGRAM, 3, Type::Reply, 1, Status::Ok, b""),
            packet(REMOTE_PROGRAM, 3, Type::Message, 1, Status::Ok, b""),
            packet(REMOTE_PROGRAM, 211, Type::StreamHole, 1, Status::Ok, b""),
            packet(
                REMOTE_PROGRAM,
                211,
                Type::Stream,
                1,
                Status::Continue,
                b"data",
            ),
            packet(QEMU_PROGRAM, 1, Type::Stream, 1, Status::Ok, b""),
            packet(KEEPALIVE_PROGRAM, 3, Type::Message, 0, Status::Ok, b""),
            packet(KEEPALIVE_PROGRAM, 1, Type::Message, 0, Status::Ok, b"x"),
            call(3, 1, b"")[..20].to_vec(),
            garbage,
            vec![0x7f, 0xff, 0xff, 0xff],
            // A call whose body does not parse.
            call(proc::DOMAIN_LOOKUP_BY_NAME, 1, &[0, 0, 0, 9, b'a']),
            call(proc::DOMAIN_GET_XML_DESC, 1, &dom_body(&web1())),
        ];
        for bytes in cases {
            let mut s = Session::new("qemu:///system");
            assert!(s.client(bytes.clone(), &grants).is_err(), "{bytes:?}");
        }
        // Also a second version of the remote program.
        let mut s = Session::new("qemu:///system");
        let mut v2 = call(3, 1, b"");
        v2[8..12].copy_from_slice(&2u32.to_be_bytes());
        assert!(s.client(v2, &grants).is_err());
    }

    #[test]
    fn keepalive_passes_both_ways() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        let ping = packet(KEEPALIVE_PROGRAM, 1, Type::Message, 0, Status::Ok, b"");
        let pong = packet(KEEPALIVE_PROGRAM, 2, Type::Message, 0, Status::Ok, b"");
        assert_eq!(
            s.daemon(ping.clone(), &grants).unwrap(),
            vec![Out::ToClient(ping.clone())]
        );
        assert_eq!(
            s.client(pong.clone(), &grants).unwrap(),
            vec![Out::ToDaemon(pong)]
        );
        assert_eq!(
            s.client(ping.clone(), &grants).unwrap(),
            vec![Out::ToDaemon(ping)]
        );
    }

    #[test]
    fn a_listing_shows_only_visible_domains_and_counts_only_them() {
        let grants = alice();
        let all = [web1(), db1(), dom("web2", 3, -1)];
        for need_results in [1, 0] {
            let mut s = Session::new("qemu:///system");
            let args = body(|w| {
                w.i32(need_results).u32(0);
            });
            let out = s
                .client(call(proc::CONNECT_LIST_ALL_DOMAINS, 5, &args), &grants)
                .unwrap();
            let (d, _, _) = split(&out);
            let sent = parse(d[0]);
            assert_eq!(
                Reader::new(sent.body).i32(),
                Ok(1),
                "always asks for the domains"
            );
            let serial = sent.header.serial;
            let out = s
                .daemon(
                    reply(
                        proc::CONNECT_LIST_ALL_DOMAINS,
                        serial,
                        &list_all_reply(&all),
                    ),
                    &grants,
                )
                .unwrap();
            let (_, c, _) = split(&out);
            let got = parse(c[0]);
            assert_eq!(got.header.serial, 5);
            let mut r = Reader::new(got.body);
            let count = r.u32().unwrap();
            let mut names = Vec::new();
            for _ in 0..count {
                names.push(Domain::read(&mut r).unwrap().name);
            }
            assert_eq!(r.u32(), Ok(2), "ret counts the visible domains");
            assert_eq!(r.finish(), Ok(()));
            if need_results == 1 {
                assert_eq!(names, ["web1", "web2"]);
            } else {
                assert!(names.is_empty());
            }
            // Every UUID was learnt from the answer, invisible ones too.
            assert_eq!(s.filter.learnt_name(&db1().uuid), Some("db1"));
        }
    }

    #[test]
    fn old_listings_are_answered_from_a_list_all_sent_in_their_place() {
        let grants = alice();
        let running = [web1(), db1()];
        let off = [dom("web2", 3, -1), dom("db2", 4, -1)];
        // (procedure, its arguments, the list-all flags sent instead, the daemon's answer,
        // the reply the client gets)
        type Row<'a> = (u32, Vec<u8>, u32, &'a [Domain], Vec<u8>);
        let cases: &[Row] = &[
            (
                proc::CONNECT_NUM_OF_DOMAINS,
                vec![],
                1,
                &running,
                body(|w| {
                    w.i32(1);
                }),
            ),
            (
                proc::CONNECT_LIST_DOMAINS,
                body(|w| {
                    w.i32(10);
                }),
                1,
                &running,
                body(|w| {
                    w.u32(1).i32(3);
                }),
            ),
            (
                proc::CONNECT_LIST_DOMAINS,
                body(|w| {
                    w.i32(0);
                }),
                1,
                &running,
                body(|w| {
                    w.u32(0);
                }),
            ),
            (
                proc::CONNECT_NUM_OF_DEFINED_DOMAINS,
                vec![],
                2,
                &off,
                body(|w| {
                    w.i32(1);
                }),
            ),
            (
                proc::CONNECT_LIST_DEFINED_DOMAINS,
                body(|w| {
                    w.i32(-1);
                }),
                2,
                &off,
                body(|w| {
                    w.u32(0);
                }),
            ),
            (
                proc::CONNECT_LIST_DEFINED_DOMAINS,
                body(|w| {
                    w.i32(5);
                }),
                2,
                &off,
                body(|w| {
                    w.u32(1).string("web2");
                }),
            ),
        ];
        for (number, args, flags, answer, expected) in cases {
            let mut s = Session::new("qemu:///system");
            let out = s.client(call(*number, 8, args), &grants).unwrap();
            let (d, _, _) = split(&out);
            let sent = parse(d[0]);
            assert_eq!(sent.header.proc, proc::CONNECT_LIST_ALL_DOMAINS);
            let mut r = Reader::new(sent.body);
            assert_eq!((r.i32(), r.u32()), (Ok(1), Ok(*flags)));
            let out = s
                .daemon(
                    reply(
                        proc::CONNECT_LIST_ALL_DOMAINS,
                        sent.header.serial,
                        &list_all_reply(answer),
                    ),
                    &grants,
                )
                .unwrap();
            let (_, c, _) = split(&out);
            let got = parse(c[0]);
            assert_eq!((got.header.proc, got.header.serial), (*number, 8));
            assert_eq!(got.body, &expected[..], "{number}");
        }
    }

    #[test]
    fn an_invisible_domain_is_missing_whichever_way_it_is_looked_up() {
        let grants = alice();
        for (uri, by_name, by_uuid, by_id) in [
            (
                "qemu:///system",
                "Domain not found: no domain with matching name 'db1'",
                "Domain not found: no domain with matching uuid '02020202-0202-0202-0202-020202020202'",
                "Domain not found: no domain with matching id 4",
            ),
            (
                "test:///default",
                "Domain not found",
                "Domain not found",
                "Domain not found",
            ),
        ] {
            let from = if uri.starts_with("test") { 12 } else { 10 };
            let mut s = Session::new(uri);
            // By name: never forwarded.
            let args = body(|w| {
                w.string("db1");
            });
            let out = s
                .client(call(proc::DOMAIN_LOOKUP_BY_NAME, 1, &args), &grants)
                .unwrap();
            let (d, c, a) = split(&out);
            assert!(d.is_empty());
            assert_eq!(error_of(c[0]), (42, from, by_name.to_string()));
            assert!(!a[0].allowed);
            // By UUID and by id: forwarded, the answer replaced.
            for (number, args, message) in [
                (
                    proc::DOMAIN_LOOKUP_BY_UUID,
                    body(|w| {
                        w.opaque_fixed(&[2; 16]);
                    }),
                    by_uuid,
                ),
                (
                    proc::DOMAIN_LOOKUP_BY_ID,
                    body(|w| {
                        w.i32(4);
                    }),
                    by_id,
                ),
            ] {
                let serial = s.forwarded(call(number, 2, &args), &grants);
                let out = s
                    .daemon(reply(number, serial, &dom_body(&db1())), &grants)
                    .unwrap();
                let (_, c, _) = split(&out);
                let invisible = c[0].clone();
                assert_eq!(error_of(&invisible), (42, from, message.to_string()));
                // The daemon's own "no such domain" for a missing one: the same bytes.
                let serial = s.forwarded(call(number, 2, &args), &grants);
                let daemons = not_found(
                    s.filter.driver,
                    Some("no domain with matching uuid 'whatever the daemon says'"),
                );
                let out = s
                    .daemon(error_reply(number, serial, &daemons), &grants)
                    .unwrap();
                let (_, c, _) = split(&out);
                assert_eq!(c[0], &invisible, "{uri} {number}");
            }
            // By name of a visible domain: forwarded and passed on.
            let args = body(|w| {
                w.string("web1");
            });
            let serial = s.forwarded(call(proc::DOMAIN_LOOKUP_BY_NAME, 3, &args), &grants);
            let out = s
                .daemon(
                    reply(proc::DOMAIN_LOOKUP_BY_NAME, serial, &dom_body(&web1())),
                    &grants,
                )
                .unwrap();
            let (_, c, _) = split(&out);
            assert_eq!(parse(c[0]).body, &dom_body(&web1())[..]);
            assert_eq!(parse(c[0]).header.serial, 3);
        }
    }

    #[test]
    fn a_domain_call_is_judged_by_its_uuid_never_by_its_name() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        s.learn(&[web1(), db1()], &grants);
        // web1's name with db1's UUID: db1 it is, and invisible.
        let forged = Domain {
            name: "web1".into(),
            ..db1()
        };
        for number in [proc::DOMAIN_CREATE, 16, proc::DOMAIN_SUSPEND] {
            let out = s
                .client(call(number, 4, &dom_body(&forged)), &grants)
                .unwrap();
            let (d, c, a) = split(&out);
            assert!(d.is_empty(), "{number} forwarded");
            let (code, _, message) = error_of(c[0]);
            assert_eq!(code, 42);
            assert_eq!(
                message,
                "Domain not found: no domain with matching uuid \
                 '02020202-0202-0202-0202-020202020202' (web1)"
            );
            assert_eq!(a[0].domain.as_deref(), Some("db1"), "audited as what it is");
        }
        // A UUID never learnt: the same error shape, nothing forwarded.
        let unknown = dom("web1", 9, 1);
        let out = s.client(call(16, 5, &dom_body(&unknown)), &grants).unwrap();
        let (d, c, _) = split(&out);
        assert!(d.is_empty());
        assert_eq!(error_of(c[0]).0, 42);
    }

    #[test]
    fn acting_waits_for_the_daemon_to_say_which_domain_the_uuid_is_now() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        s.learn(&[web1(), dom("web2", 3, -1)], &grants);
        // start web1 (granted): held, checked, forwarded under a fresh serial.
        let out = s
            .client(call(proc::DOMAIN_CREATE, 11, &dom_body(&web1())), &grants)
            .unwrap();
        let (d, c, a) = split(&out);
        assert!(c.is_empty() && a.is_empty());
        let check = parse(d[0]);
        assert_eq!(check.header.proc, proc::DOMAIN_LOOKUP_BY_UUID);
        assert_eq!(check.body, &[1u8; 16][..]);
        let out = s
            .daemon(
                reply(
                    proc::DOMAIN_LOOKUP_BY_UUID,
                    check.header.serial,
                    &dom_body(&web1()),
                ),
                &grants,
            )
            .unwrap();
        let (d, c, a) = split(&out);
        assert!(c.is_empty());
        let sent = parse(d[0]);
        assert_eq!(sent.header.proc, proc::DOMAIN_CREATE);
        assert_ne!(sent.header.serial, check.header.serial);
        assert_eq!(
            a[0],
            &Call {
                procedure: "DOMAIN_CREATE".into(),
                action: Some(Action::Start),
                domain: Some("web1".into()),
                allowed: true,
            }
        );
        let out = s
            .daemon(reply(proc::DOMAIN_CREATE, sent.header.serial, b""), &grants)
            .unwrap();
        let (_, c, _) = split(&out);
        assert_eq!(parse(c[0]).header.serial, 11);

        // The UUID was renamed to something ungranted meanwhile: refused as missing.
        let out = s
            .client(call(proc::DOMAIN_CREATE, 12, &dom_body(&web1())), &grants)
            .unwrap();
        let (d, _, _) = split(&out);
        let serial = parse(d[0]).header.serial;
        let renamed = dom("secret", 1, 3);
        let out = s
            .daemon(
                reply(proc::DOMAIN_LOOKUP_BY_UUID, serial, &dom_body(&renamed)),
                &grants,
            )
            .unwrap();
        let (d, c, a) = split(&out);
        assert!(d.is_empty());
        assert_eq!(error_of(c[0]).0, 42);
        assert!(!a[0].allowed);

        // Visible but not granted that command: access denied, after the check.
        let web2 = dom("web2", 3, -1);
        let out = s
            .client(call(proc::DOMAIN_CREATE, 13, &dom_body(&web2)), &grants)
            .unwrap();
        let (d, _, _) = split(&out);
        let serial = parse(d[0]).header.serial;
        let out = s
            .daemon(
                reply(proc::DOMAIN_LOOKUP_BY_UUID, serial, &dom_body(&web2)),
                &grants,
            )
            .unwrap();
        let (d, c, a) = split(&out);
        assert!(d.is_empty());
        assert_eq!(error_of(c[0]).2, DENIED);
        assert_eq!(a[0].action, Some(Action::Start));

        // Undefined meanwhile: the daemon's no-domain becomes the usual error.
        let out = s
            .client(call(proc::DOMAIN_CREATE, 14, &dom_body(&web2)), &grants)
            .unwrap();
        let (d, _, _) = split(&out);
        let serial = parse(d[0]).header.serial;
        let gone = not_found(Driver::Qemu, Some("no domain with matching uuid 'x'"));
        let out = s
            .daemon(
                error_reply(proc::DOMAIN_LOOKUP_BY_UUID, serial, &gone),
                &grants,
            )
            .unwrap();
        let (_, c, _) = split(&out);
        assert_eq!(error_of(c[0]).0, 42);
        assert_eq!(s.filter.learnt_name(&web2.uuid), None);
    }

    #[test]
    fn reads_use_a_fresh_name_and_check_a_stale_one_again() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        s.learn(&[web1()], &grants);
        let out = s.client(call(16, 20, &dom_body(&web1())), &grants).unwrap();
        let (d, _, _) = split(&out);
        assert_eq!(parse(d[0]).header.proc, 16, "fresh: forwarded at once");
        s.now += FRESH;
        let out = s.client(call(16, 21, &dom_body(&web1())), &grants).unwrap();
        let (d, _, _) = split(&out);
        assert_eq!(
            parse(d[0]).header.proc,
            proc::DOMAIN_LOOKUP_BY_UUID,
            "stale: checked"
        );
        // Revoked: the same fresh read is now refused as missing.
        let mut s = Session::new("qemu:///system");
        s.learn(&[web1()], &grants);
        let out = s
            .client(call(16, 20, &dom_body(&web1())), &nobody())
            .unwrap();
        let (d, c, _) = split(&out);
        assert!(d.is_empty());
        assert_eq!(error_of(c[0]).0, 42);
    }

    #[test]
    fn flags_and_arguments_are_held_to_the_safe_set() {
        let grants = Fake {
            see: vec!["web1"],
            act: Action::ALL.iter().map(|a| (*a, "web1")).collect(),
        };
        let send_key = |codeset: u32, keys: &[u32]| {
            body(|w| {
                web1().write(w);
                w.u32(codeset).u32(0).u32(keys.len() as u32);
                for k in keys {
                    w.u32(*k);
                }
                w.u32(0);
            })
        };
        let console = |flags: u32| {
            body(|w| {
                web1().write(w);
                w.optional_string(None).u32(flags);
            })
        };
        let screenshot = |flags: u32| {
            body(|w| {
                web1().write(w);
                w.u32(0).u32(flags);
            })
        };
        // (procedure, body, allowed)
        let cases: Vec<(u32, Vec<u8>, bool)> = vec![
            (proc::DOMAIN_CREATE_WITH_FLAGS, dom_flags(&web1(), 0), true),
            (proc::DOMAIN_CREATE_WITH_FLAGS, dom_flags(&web1(), 1), true),
            (proc::DOMAIN_CREATE_WITH_FLAGS, dom_flags(&web1(), 2), false),
            (
                proc::DOMAIN_CREATE_WITH_FLAGS,
                dom_flags(&web1(), 1 << 5),
                false,
            ),
            (proc::DOMAIN_SHUTDOWN_FLAGS, dom_flags(&web1(), 1), true),
            (proc::DOMAIN_SHUTDOWN_FLAGS, dom_flags(&web1(), 2), false),
            (proc::DOMAIN_REBOOT, dom_flags(&web1(), 0), true),
            (proc::DOMAIN_REBOOT, dom_flags(&web1(), 2), false),
            (proc::DOMAIN_RESET, dom_flags(&web1(), 0), true),
            (proc::DOMAIN_RESET, dom_flags(&web1(), 1), false),
            (proc::DOMAIN_DESTROY_FLAGS, dom_flags(&web1(), 1), true),
            (proc::DOMAIN_DESTROY_FLAGS, dom_flags(&web1(), 2), false),
            (proc::DOMAIN_SEND_KEY, send_key(0, &[29, 56, 111]), true),
            (proc::DOMAIN_SEND_KEY, send_key(0, &[111, 29, 56]), true),
            (proc::DOMAIN_SEND_KEY, send_key(0, &[29, 56]), false),
            (
                proc::DOMAIN_SEND_KEY,
                send_key(0, &[29, 56, 111, 111]),
                false,
            ),
            (proc::DOMAIN_SEND_KEY, send_key(0, &[29, 56, 62]), false),
            (proc::DOMAIN_SEND_KEY, send_key(1, &[29, 56, 111]), false),
            (proc::DOMAIN_SEND_KEY, send_key(0, &[]), false),
            (proc::DOMAIN_OPEN_CONSOLE, console(0), true),
            (proc::DOMAIN_OPEN_CONSOLE, console(2), true),
            (proc::DOMAIN_OPEN_CONSOLE, console(1), false),
            (proc::DOMAIN_OPEN_CONSOLE, console(3), false),
            (proc::DOMAIN_OPEN_CONSOLE, console(4), false),
            (proc::DOMAIN_SCREENSHOT, screenshot(0), true),
            (proc::DOMAIN_SCREENSHOT, screenshot(1), false),
            (proc::DOMAIN_GET_XML_DESC, dom_flags(&web1(), 1 << 3), false),
            (proc::DOMAIN_GET_XML_DESC, dom_flags(&web1(), 1 << 4), false),
        ];
        for (number, args, allowed) in cases {
            let mut s = Session::new("qemu:///system");
            s.learn(&[web1()], &grants);
            let out = s.client(call(number, 30, &args), &grants).unwrap();
            let (d, c, a) = split(&out);
            if allowed {
                assert_eq!(d.len(), 1, "{number} {args:?}");
            } else {
                assert!(d.is_empty(), "{number} {args:?} forwarded");
                assert_eq!(error_of(c[0]).2, DENIED, "{number}");
                assert!(!a[0].allowed);
            }
        }
    }

    #[test]
    fn xml_is_never_asked_for_with_the_secure_flag() {
        let grants = alice();
        for (flags, sent) in [(1u32, 0u32), (3, 2), (2, 2), (0, 0), (5, 4)] {
            let mut s = Session::new("qemu:///system");
            s.learn(&[web1()], &grants);
            let out = s
                .client(
                    call(proc::DOMAIN_GET_XML_DESC, 2, &dom_flags(&web1(), flags)),
                    &grants,
                )
                .unwrap();
            let (d, _, _) = split(&out);
            let p = parse(d[0]);
            let mut r = Reader::new(p.body);
            Domain::read(&mut r).unwrap();
            assert_eq!(r.u32(), Ok(sent), "{flags}");
        }
    }

    /// Starts a screenshot of web1; returns the session and the daemon's serial.
    fn screenshot_started() -> (Session, Fake, u32) {
        let grants = Fake {
            see: vec!["web1"],
            act: vec![(Action::Screenshot, "web1"), (Action::Console, "web1")],
        };
        let mut s = Session::new("qemu:///system");
        s.learn(&[web1()], &grants);
        let args = body(|w| {
            web1().write(w);
            w.u32(0).u32(0);
        });
        let out = s
            .client(call(proc::DOMAIN_SCREENSHOT, 40, &args), &grants)
            .unwrap();
        let (d, _, _) = split(&out);
        let check = parse(d[0]).header.serial;
        let out = s
            .daemon(
                reply(proc::DOMAIN_LOOKUP_BY_UUID, check, &dom_body(&web1())),
                &grants,
            )
            .unwrap();
        let (d, _, _) = split(&out);
        let serial = parse(d[0]).header.serial;
        (s, grants, serial)
    }

    fn stream(from_daemon: bool, serial: u32, status: Status, data: &[u8]) -> Vec<u8> {
        let _ = from_daemon;
        packet(
            REMOTE_PROGRAM,
            proc::DOMAIN_SCREENSHOT,
            Type::Stream,
            serial,
            status,
            data,
        )
    }

    #[test]
    fn a_screenshot_stream_passes_to_the_client_and_nothing_else_does() {
        let (mut s, grants, serial) = screenshot_started();
        let mime = body(|w| {
            w.optional_string(Some("image/png"));
        });
        // Data may come before or after the reply.
        for bytes in [
            stream(true, serial, Status::Continue, b"PNG1"),
            reply(proc::DOMAIN_SCREENSHOT, serial, &mime),
            stream(true, serial, Status::Continue, b"PNG2"),
            stream(true, serial, Status::Ok, b""),
        ] {
            let out = s.daemon(bytes, &grants).unwrap();
            let (_, c, _) = split(&out);
            assert_eq!(parse(c[0]).header.serial, 40);
        }
        // The client finishes; the daemon confirms.
        let out = s
            .client(stream(false, 40, Status::Ok, b""), &grants)
            .unwrap();
        let (d, _, _) = split(&out);
        assert_eq!(parse(d[0]).header.serial, serial);
        let out = s
            .daemon(stream(true, serial, Status::Ok, b""), &grants)
            .unwrap();
        assert_eq!(split(&out).1.len(), 1);

        // Data from the client into a screenshot; a stream it never opened.
        let (mut s, grants, _) = screenshot_started();
        assert!(
            s.client(stream(false, 40, Status::Continue, b"x"), &grants)
                .is_err()
        );
        let (mut s, grants, serial) = screenshot_started();
        assert!(
            s.client(stream(false, 41, Status::Ok, b""), &grants)
                .is_err()
        );
        assert!(
            s.daemon(stream(true, serial + 100, Status::Continue, b"x"), &grants)
                .is_err()
        );
        // Another procedure on the same serial is another stream.
        let other = packet(
            REMOTE_PROGRAM,
            proc::DOMAIN_OPEN_CONSOLE,
            Type::Stream,
            40,
            Status::Continue,
            b"x",
        );
        assert!(s.client(other, &grants).is_err());
    }

    #[test]
    fn a_failed_stream_call_closes_its_stream() {
        let (mut s, grants, serial) = screenshot_started();
        let error = not_found(Driver::Qemu, Some("x"));
        let out = s
            .daemon(
                error_reply(proc::DOMAIN_SCREENSHOT, serial, &error),
                &grants,
            )
            .unwrap();
        assert_eq!(parse(split(&out).1[0]).header.serial, 40);
        assert!(
            s.daemon(stream(true, serial, Status::Continue, b"x"), &grants)
                .is_err()
        );
    }

    #[test]
    fn replies_and_events_are_matched_and_filtered() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        // A reply to nothing.
        assert!(s.daemon(reply(3, 77, b""), &grants).is_err());
        // A reply of another procedure than the call's.
        let serial = s.forwarded(call(3, 1, b""), &grants);
        assert!(s.daemon(reply(4, serial, b""), &grants).is_err());

        let mut s = Session::new("qemu:///system");
        let event = |d: &Domain| {
            packet(
                REMOTE_PROGRAM,
                318,
                Type::Message,
                0,
                Status::Ok,
                &body(|w| {
                    w.i32(1);
                    d.write(w);
                    w.i32(2).i32(0);
                }),
            )
        };
        assert_eq!(
            split(&s.daemon(event(&web1()), &grants).unwrap()).1.len(),
            1
        );
        assert!(s.daemon(event(&db1()), &grants).unwrap().is_empty());
        assert!(
            s.daemon(event(&web1()), &nobody()).unwrap().is_empty(),
            "revoked"
        );
        assert_eq!(s.filter.learnt_name(&db1().uuid), Some("db1"));
        // pmsuspend's reason comes before its domain; an old-style event has it first.
        let pm = packet(
            REMOTE_PROGRAM,
            330,
            Type::Message,
            0,
            Status::Ok,
            &body(|w| {
                w.i32(1).i32(0);
                web1().write(w);
                w.i32(0);
            }),
        );
        assert_eq!(split(&s.daemon(pm, &grants).unwrap()).1.len(), 1);
        let old = packet(
            REMOTE_PROGRAM,
            107,
            Type::Message,
            0,
            Status::Ok,
            &body(|w| {
                db1().write(w);
                w.i32(0).i32(0);
            }),
        );
        assert!(s.daemon(old, &grants).unwrap().is_empty());
        // An event of no domain kind (a network's) is dropped.
        let net = packet(
            REMOTE_PROGRAM,
            315,
            Type::Message,
            0,
            Status::Ok,
            b"anything",
        );
        assert!(s.daemon(net, &grants).unwrap().is_empty());
    }

    #[test]
    fn an_event_callback_for_one_domain_needs_it_visible() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        s.learn(&[web1(), db1()], &grants);
        let register = |d: Option<&Domain>| {
            body(|w| {
                w.i32(0);
                match d {
                    Some(d) => {
                        w.bool(true);
                        d.write(w);
                    }
                    None => {
                        w.bool(false);
                    }
                }
            })
        };
        let number = proc::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY;
        s.forwarded(call(number, 1, &register(None)), &grants);
        s.forwarded(call(number, 2, &register(Some(&web1()))), &grants);
        let out = s
            .client(call(number, 3, &register(Some(&db1()))), &grants)
            .unwrap();
        let (d, c, _) = split(&out);
        assert!(d.is_empty());
        assert_eq!(error_of(c[0]).0, 42);
    }

    #[test]
    fn stats_carry_only_visible_records_and_named_domains_must_be_visible() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        let args = |doms: &[Domain]| {
            body(|w| {
                w.u32(doms.len() as u32);
                for d in doms {
                    d.write(w);
                }
                w.u32(1).u32(0);
            })
        };
        let serial = s.forwarded(
            call(proc::CONNECT_GET_ALL_DOMAIN_STATS, 1, &args(&[])),
            &grants,
        );
        let record = |w: &mut Writer, d: &Domain| {
            d.write(w);
            w.u32(2);
            w.string("state.state").u32(1).i32(1);
            w.string("state.reason").u32(7).string("r");
        };
        let answer = body(|w| {
            w.u32(2);
            record(w, &db1());
            record(w, &web1());
        });
        let out = s
            .daemon(
                reply(proc::CONNECT_GET_ALL_DOMAIN_STATS, serial, &answer),
                &grants,
            )
            .unwrap();
        let (_, c, _) = split(&out);
        let expected = body(|w| {
            w.u32(1);
            record(w, &web1());
        });
        assert_eq!(parse(c[0]).body, &expected[..]);
        // Naming domains: each must be visible; a name learnt long ago still serves.
        s.now += FRESH * 10;
        s.forwarded(
            call(proc::CONNECT_GET_ALL_DOMAIN_STATS, 2, &args(&[web1()])),
            &grants,
        );
        let out = s
            .client(
                call(
                    proc::CONNECT_GET_ALL_DOMAIN_STATS,
                    3,
                    &args(&[web1(), db1()]),
                ),
                &grants,
            )
            .unwrap();
        let (d, c, _) = split(&out);
        assert!(d.is_empty());
        assert_eq!(error_of(c[0]).0, 42);
    }

    #[test]
    fn the_close_call_is_the_last_thing_the_client_sends() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        s.forwarded(call(proc::CONNECT_CLOSE, 9, b""), &grants);
        assert!(s.filter.is_closed());
        assert_eq!(s.client(call(3, 10, b""), &grants), Err(End::AfterClose));
    }

    #[test]
    fn limits_end_the_connection_instead_of_growing() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        for serial in 0..MAX_OUTSTANDING as u32 {
            s.forwarded(call(3, serial, b""), &grants);
        }
        assert_eq!(
            s.client(call(3, 1000, b""), &grants),
            Err(End::Limit("outstanding calls"))
        );
        // A serial the client already has outstanding.
        let mut s = Session::new("qemu:///system");
        s.forwarded(call(3, 5, b""), &grants);
        assert!(s.client(call(3, 5, b""), &grants).is_err());
        // Held calls.
        let mut s = Session::new("qemu:///system");
        s.learn(&[web1()], &grants);
        for serial in 0..MAX_HELD as u32 {
            s.forwarded(
                call(proc::DOMAIN_CREATE, serial, &dom_body(&web1())),
                &grants,
            );
        }
        assert_eq!(
            s.client(call(proc::DOMAIN_CREATE, 99, &dom_body(&web1())), &grants),
            Err(End::Limit("held calls"))
        );
    }

    #[test]
    fn serials_on_the_daemons_side_are_the_filters_own() {
        let grants = alice();
        let mut s = Session::new("qemu:///system");
        let a = s.forwarded(call(3, 1, b""), &grants);
        let b = s.forwarded(call(4, 1_000_000, b""), &grants);
        assert_ne!(a, b);
        let out = s.daemon(reply(4, b, b"v"), &grants).unwrap();
        assert_eq!(parse(split(&out).1[0]).header.serial, 1_000_000);
        let out = s.daemon(reply(3, a, b"t"), &grants).unwrap();
        assert_eq!(parse(split(&out).1[0]).header.serial, 1);
    }
}
