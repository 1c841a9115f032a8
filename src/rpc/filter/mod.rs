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
mod tests;
