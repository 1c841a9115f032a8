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

// ---- the errors the filter writes itself ----

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

impl Filter {
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

    /// Answers the call of `header` with `error`, in the daemon's stead.
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

// ---- the UUID → name map learnt from the daemon ----

/// The name the daemon gave a UUID, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Learnt {
    name: String,
    at: Instant,
}

impl Filter {
    /// Whether the name the daemon gave this UUID is known (for tests and the fuzzer's
    /// invariant).
    pub fn learnt_name(&self, uuid: &Uuid) -> Option<&str> {
        self.learnt.get(uuid).map(|l| l.name.as_str())
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
}

// ---- calls awaiting the daemon's reply, under the filter's serials ----

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
    Recheck(Box<DomainCall>),
}

/// What a lookup asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LookupOf {
    Name(String),
    Uuid(Uuid),
    Id(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    /// The client's serial; `None` for a call the filter injected.
    client_serial: Option<u32>,
    /// The client's header (program, version and procedure for the reply).
    header: Header,
    then: Await,
}

impl Pending {
    /// The procedure the daemon's reply must be of: what was sent, which for an old
    /// listing or a recheck is not what the client called.
    fn reply_proc(&self) -> u32 {
        match self.then {
            Await::OldList { .. } => proc::CONNECT_LIST_ALL_DOMAINS,
            Await::Recheck(_) => proc::DOMAIN_LOOKUP_BY_UUID,
            _ => self.header.proc,
        }
    }
}

impl Filter {
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

    /// Sends a call to the daemon under a fresh serial, which it returns, remembering
    /// what its reply is awaited for.
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

    /// Whether a call of the client's with this serial is still waiting, forwarded or held.
    fn client_serial_in_use(&self, serial: u32) -> bool {
        self.pending.values().any(|p| {
            p.client_serial == Some(serial)
                || matches!(&p.then, Await::Recheck(held) if held.header.serial == serial)
        })
    }
}

// ---- a call on one domain, judged by its UUID ----

/// What a call's domain argument said.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DomainArg {
    uuid: Uuid,
    name: String,
}

/// What a key needs of a domain for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    See,
    Act(Action),
}

/// A client's call on one domain, as it waits for judgement (and, held, for the daemon's
/// answer about its UUID).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DomainCall {
    /// The client's header and whole packet, forwarded as they are if allowed.
    header: Header,
    packet: Vec<u8>,
    dom: DomainArg,
    need: Need,
    /// The stream the call opens, if allowed.
    stream: Option<StreamKind>,
}

impl DomainCall {
    /// A call that reads a visible domain and opens no stream.
    fn reading(header: Header, packet: Vec<u8>, dom: DomainArg) -> DomainCall {
        DomainCall {
            header,
            packet,
            dom,
            need: Need::See,
            stream: None,
        }
    }
}

impl Filter {
    /// Judges a call on one domain by its UUID: forwards it, holds it while the domain is
    /// checked again, or answers it.
    fn judge(
        &mut self,
        call: DomainCall,
        grants: &dyn Grants,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let known = self.learnt.get(&call.dom.uuid).cloned();
        let Some(known) = known else {
            // Never learnt from the daemon: the key cannot have reached it by a listing or
            // a lookup, so it is a domain it may not see (or none at all).
            return self.refuse(&call, None, false, out);
        };
        let fresh = now.saturating_duration_since(known.at) < FRESH;
        match call.need {
            Need::See if fresh => {
                if grants.may_see(&known.name) {
                    self.forward_judged(call, out)
                } else {
                    self.refuse(&call, Some(known.name), false, out)
                }
            }
            Need::Act(_) if !grants.may_see(&known.name) => {
                self.refuse(&call, Some(known.name), false, out)
            }
            _ => self.hold(call, out),
        }
    }

    /// Answers a judged call that may not go on, and audits it: a domain the key may not
    /// see (or an unknown UUID) gets the error of a missing one, a visible one without the
    /// command gets access denied. `known` is the daemon's name for the UUID, if learnt.
    fn refuse(
        &mut self,
        call: &DomainCall,
        known: Option<String>,
        visible: bool,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let action = match call.need {
            Need::Act(action) => Some(action),
            Need::See => None,
        };
        let name = procedure_label(call.header.proc);
        let domain = Some(known.unwrap_or_else(|| bounded(&call.dom.name).to_string()));
        if visible {
            self.deny(&call.header, name, action, domain, out);
        } else {
            let error = self.object_not_found(&call.dom);
            self.answer_error(&call.header, &error, out);
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
    fn hold(&mut self, call: DomainCall, out: &mut Vec<Out>) -> Result<(), End> {
        let size = call.packet.len();
        if self.held >= MAX_HELD || self.held_bytes.saturating_add(size) > MAX_HELD_BYTES {
            return Err(End::Limit("held calls"));
        }
        self.held += 1;
        self.held_bytes += size;
        let mut w = Writer::new();
        w.opaque_fixed(&call.dom.uuid.0);
        let lookup = Header {
            prog: REMOTE_PROGRAM,
            vers: REMOTE_VERSION,
            proc: proc::DOMAIN_LOOKUP_BY_UUID,
            kind: Type::Call,
            serial: 0,
            status: Status::Ok,
        };
        let injected = wire::encode(&lookup, &w.into_bytes());
        self.send(None, lookup, injected, Await::Recheck(Box::new(call)), out)
            .map(|_| ())
    }

    /// Forwards a call whose domain was judged, registering the stream it opens.
    fn forward_judged(&mut self, call: DomainCall, out: &mut Vec<Out>) -> Result<(), End> {
        let DomainCall {
            header,
            packet,
            stream,
            ..
        } = call;
        let then = if stream.is_some() {
            Await::Stream
        } else {
            Await::Plain
        };
        let serial = self.send(Some(header.serial), header, packet, then, out)?;
        if let Some(kind) = stream {
            self.open_stream(kind, header.proc, header.serial, serial)?;
        }
        Ok(())
    }

    /// The daemon answered the lookup injected for a held call: the call goes on, or is
    /// answered, by what the UUID is now.
    fn recheck(
        &mut self,
        held: DomainCall,
        status: Status,
        body: &[u8],
        grants: &dyn Grants,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        self.held = self.held.saturating_sub(1);
        self.held_bytes = self.held_bytes.saturating_sub(held.packet.len());
        match status {
            Status::Ok => {
                let mut r = Reader::new(body);
                let found = Domain::read(&mut r)?;
                r.finish()?;
                if found.uuid != held.dom.uuid {
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
                    return self.refuse(&held, Some(found.name), visible, out);
                }
                if let Need::Act(action) = held.need {
                    out.push(Out::Audit(Call {
                        procedure: procedure_label(held.header.proc),
                        action: Some(action),
                        domain: Some(found.name),
                        allowed: true,
                    }));
                }
                self.forward_judged(held, out)
            }
            Status::Error => {
                let (code, _) = RemoteError::read_code(body)?;
                if code == remote::VIR_ERR_NO_DOMAIN {
                    self.learnt.remove(&held.dom.uuid);
                    return self.refuse(&held, None, false, out);
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
}

// ---- calls from the client, by rule ----

impl Filter {
    /// A call of the remote program: forwarded as it is or rewritten, judged by its
    /// domain, or answered here, by its rule; a procedure without one is denied.
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
        let Some(rule) = allow::rule(header.proc) else {
            self.deny(&header, procedure_label(header.proc), None, None, out);
            return Ok(());
        };
        match rule {
            Rule::Connection | Rule::Events(Events::Plain) => {
                self.forward(header, packet, Await::Plain, out)
            }
            Rule::Open => self.open(header, body, out),
            Rule::Close => {
                self.closed = true;
                self.forward(header, packet, Await::Plain, out)
            }
            Rule::DomainCapabilities => self.domain_capabilities(header, body, packet, out),
            Rule::List(List::All) => self.list_all(header, body, out),
            Rule::List(List::Stats) => self.stats(header, body, packet, grants, out),
            Rule::List(old) => self.old_list(header, body, old, out),
            Rule::Lookup(lookup) => self.lookup(header, body, packet, lookup, grants, out),
            Rule::Read(object) => {
                let dom = read_object(&mut Reader::new(body), object)?;
                self.judge(DomainCall::reading(header, packet, dom), grants, now, out)
            }
            Rule::XmlDesc { object, keep } => {
                match self.xml_desc(header, body, packet, object, keep, out)? {
                    Some(call) => self.judge(call, grants, now, out),
                    None => Ok(()),
                }
            }
            Rule::Act(action, check) => {
                match self.act(header, body, packet, action, check, out)? {
                    Some(call) => self.judge(call, grants, now, out),
                    None => Ok(()),
                }
            }
            Rule::Events(Events::CallbackRegister) => match callback_domain(body)? {
                Some(dom) => self.judge(DomainCall::reading(header, packet, dom), grants, now, out),
                None => self.forward(header, packet, Await::Plain, out),
            },
        }
    }

    /// connect open: the gateway's URI instead of the client's, only the read-only flag
    /// kept; a second open is denied.
    fn open(&mut self, header: Header, body: &[u8], out: &mut Vec<Out>) -> Result<(), End> {
        let mut r = Reader::new(body);
        if r.optional()? {
            r.string(STRING_MAX)?;
        }
        let flags = r.u32()?;
        r.finish()?;
        if self.opened {
            self.deny(&header, procedure_label(header.proc), None, None, out);
            return Ok(());
        }
        let mut w = Writer::new();
        w.optional_string(Some(&self.uri))
            .u32(flags & allow::CONNECT_RO);
        let packet = wire::encode(&header, &w.into_bytes());
        self.forward(header, packet, Await::Open, out)
    }

    /// Domain capabilities: denied with an emulator path, which the daemon would probe.
    fn domain_capabilities(
        &mut self,
        header: Header,
        body: &[u8],
        packet: Vec<u8>,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let mut r = Reader::new(body);
        if r.optional()? {
            self.deny(&header, procedure_label(header.proc), None, None, out);
            return Ok(());
        }
        self.forward(header, packet, Await::Plain, out)
    }

    /// connect list all domains: forwarded asking for the domains, whose reply is filtered.
    fn list_all(&mut self, header: Header, body: &[u8], out: &mut Vec<Out>) -> Result<(), End> {
        let mut r = Reader::new(body);
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
        self.forward(header, packet, then, out)
    }

    /// connect get all domain stats: every domain it names must be known and visible; the
    /// records of the reply are filtered.
    fn stats(
        &mut self,
        header: Header,
        body: &[u8],
        packet: Vec<u8>,
        grants: &dyn Grants,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let mut r = Reader::new(body);
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
        self.forward(header, packet, Await::Stats, out)
    }

    /// One of the four old listings (counts, running ids, shut-off names): a list-all is
    /// sent in its place, and its reply answers the listing.
    fn old_list(
        &mut self,
        header: Header,
        body: &[u8],
        list: List,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let mut r = Reader::new(body);
        let flags = if matches!(list, List::NumActive | List::ActiveIds) {
            allow::LIST_ACTIVE
        } else {
            allow::LIST_INACTIVE
        };
        let max = if matches!(list, List::ActiveIds | List::InactiveNames) {
            usize::try_from(r.i32()?).unwrap_or(0)
        } else {
            0
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

    /// A lookup: by an invisible name never forwarded; by UUID or id forwarded, its answer
    /// checked in `reply`.
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

    /// A read of a domain's XML, to be judged; the SECURE flag cleared in the packet, and
    /// denied here (`None`) with any flag outside `keep`.
    fn xml_desc(
        &mut self,
        header: Header,
        body: &[u8],
        mut packet: Vec<u8>,
        object: Object,
        keep: u32,
        out: &mut Vec<Out>,
    ) -> Result<Option<DomainCall>, End> {
        let mut r = Reader::new(body);
        let dom = read_object(&mut r, object)?;
        let flags_at = r.position();
        let flags = r.u32()?;
        r.finish()?;
        let flags = flags & !allow::XML_SECURE;
        if flags & !keep != 0 {
            let domain = self.known_name(&dom.uuid);
            self.deny(&header, procedure_label(header.proc), None, domain, out);
            return Ok(None);
        }
        let at = wire::PACKET_MIN + flags_at;
        if let Some(slot) = packet.get_mut(at..at + 4) {
            slot.copy_from_slice(&flags.to_be_bytes());
        }
        Ok(Some(DomainCall::reading(header, packet, dom)))
    }

    /// An action on a domain, to be judged; denied here (`None`) when its arguments do
    /// not fit its check.
    fn act(
        &mut self,
        header: Header,
        body: &[u8],
        packet: Vec<u8>,
        action: Action,
        check: Check,
        out: &mut Vec<Out>,
    ) -> Result<Option<DomainCall>, End> {
        let mut r = Reader::new(body);
        let dom = read_object(&mut r, Object::Domain)?;
        let (fits, stream) = check_arguments(&mut r, check)?;
        if !fits {
            let domain = Some(self.known_name(&dom.uuid).unwrap_or(dom.name));
            self.deny(
                &header,
                procedure_label(header.proc),
                Some(action),
                domain,
                out,
            );
            return Ok(None);
        }
        Ok(Some(DomainCall {
            header,
            packet,
            dom,
            need: Need::Act(action),
            stream,
        }))
    }
}

/// The domain an event callback registration names, if any.
fn callback_domain(body: &[u8]) -> Result<Option<DomainArg>, End> {
    let mut r = Reader::new(body);
    r.i32()?;
    let dom = if r.optional()? {
        Some(read_domain_arg(&mut r)?)
    } else {
        None
    };
    r.finish()?;
    Ok(dom)
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

// ---- replies from the daemon ----

impl Filter {
    /// A reply of the remote program.
    fn reply(
        &mut self,
        header: Header,
        body: &[u8],
        packet: Vec<u8>,
        grants: &dyn Grants,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let Some(pending) = self.pending.remove(&header.serial) else {
            return self.stream_reply(&header, packet, out);
        };
        let expected = pending.reply_proc();
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
            kind: Type::Reply,
            status: header.status,
            serial: client_serial,
            ..pending.header
        };
        if header.status == Status::Error {
            return self.error_reply(&to_client, pending.then, body, out);
        }
        if header.status != Status::Ok {
            return Err(End::Malformed("a reply whose status is CONTINUE".into()));
        }
        match pending.then {
            Await::Plain | Await::Stream => pass(packet, client_serial, out),
            Await::Open => {
                self.opened = true;
                pass(packet, client_serial, out);
            }
            Await::ListAll { wanted } => {
                let visible = self.visible_domains(body, grants, now)?;
                let body = list_all_body(&visible, wanted);
                out.push(Out::ToClient(wire::encode(&to_client, &body)));
            }
            Await::OldList { list, max } => {
                let visible = self.visible_domains(body, grants, now)?;
                let body = old_list_body(&visible, list, max);
                out.push(Out::ToClient(wire::encode(&to_client, &body)));
            }
            Await::Stats => {
                let body = self.visible_stats(body, grants, now)?;
                out.push(Out::ToClient(wire::encode(&to_client, &body)));
            }
            Await::Lookup(of) => match self.looked_up(&of, body, grants, now)? {
                None => pass(packet, client_serial, out),
                Some(hidden) => self.hide_lookup(&to_client, &of, hidden, out),
            },
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
            Await::Stream => self.close_stream(to_client.serial),
            _ => {}
        }
        out.push(Out::ToClient(wire::encode(to_client, body)));
        Ok(())
    }

    /// Learns the domain a lookup found; `Some` of its name when the key may not see it.
    fn looked_up(
        &mut self,
        of: &LookupOf,
        body: &[u8],
        grants: &dyn Grants,
        now: Instant,
    ) -> Result<Option<String>, End> {
        let mut r = Reader::new(body);
        let dom = Domain::read(&mut r)?;
        r.finish()?;
        let answers = match of {
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
            Ok(None)
        } else {
            Ok(Some(dom.name))
        }
    }

    /// Answers a lookup that found a domain the key may not see as if it found none.
    fn hide_lookup(&self, to_client: &Header, of: &LookupOf, hidden: String, out: &mut Vec<Out>) {
        let error = self.lookup_not_found(of);
        self.answer_error(to_client, &error, out);
        out.push(Out::Audit(Call {
            procedure: procedure_label(to_client.proc),
            action: None,
            domain: Some(hidden),
            allowed: false,
        }));
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
}

/// Passes a packet on to the client under its own serial.
fn pass(mut packet: Vec<u8>, client_serial: u32, out: &mut Vec<Out>) {
    wire::set_serial(&mut packet, client_serial);
    out.push(Out::ToClient(packet));
}

/// The body of a list-all reply of the visible domains: the domains if the client asked
/// for them, and their count.
fn list_all_body(visible: &[Domain], wanted: bool) -> Vec<u8> {
    let mut w = Writer::new();
    if wanted {
        w.u32(visible.len() as u32);
        for dom in visible {
            dom.write(&mut w);
        }
    } else {
        w.u32(0);
    }
    w.u32(visible.len() as u32);
    w.into_bytes()
}

/// The body of an old listing's reply, from the visible domains of its list-all: a count,
/// at most `max` ids, or at most `max` names.
fn old_list_body(visible: &[Domain], list: List, max: usize) -> Vec<u8> {
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
            let names: Vec<&str> = visible.iter().take(max).map(|d| d.name.as_str()).collect();
            w.u32(names.len() as u32);
            for name in names {
                w.string(name);
            }
        }
    }
    w.into_bytes()
}

// ---- streams ----

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

impl Filter {
    /// Registers the stream an allowed call opened.
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

    /// Forgets the stream of a call that failed.
    fn close_stream(&mut self, client_serial: u32) {
        self.streams.retain(|s| s.client_serial != client_serial);
    }

    /// A stream packet from the client.
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

    /// A stream packet from the daemon.
    fn daemon_stream(
        &mut self,
        header: &Header,
        packet: Vec<u8>,
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
        pass(packet, stream.client_serial, out);
        Ok(())
    }

    /// A reply to no pending call: a stream's error after its call was answered comes as a
    /// reply too, and ends the stream. Anything else was never sent.
    fn stream_reply(
        &mut self,
        header: &Header,
        packet: Vec<u8>,
        out: &mut Vec<Out>,
    ) -> Result<(), End> {
        let Some(index) = self
            .streams
            .iter()
            .position(|s| s.daemon_serial == header.serial && s.proc == header.proc)
        else {
            return Err(End::Unexpected(format!(
                "a reply to serial {} that was never sent",
                header.serial
            )));
        };
        let stream = self.streams.remove(index);
        pass(packet, stream.client_serial, out);
        Ok(())
    }
}

// ---- events from the daemon ----

impl Filter {
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

#[cfg(test)]
mod tests;
