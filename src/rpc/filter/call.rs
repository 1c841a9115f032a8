//! A client's call of the remote program, judged by its rule in `allow`'s table: one
//! function per kind of rule. The connection's calls are forwarded (open rewritten to the
//! gateway's URI), listings rewritten so their replies can be filtered, lookups by an
//! invisible name answered here; calls on one domain are parsed and handed to `judge`.

use std::time::Instant;

use crate::action::Action;
use crate::rpc::allow::{self, Check, Events, List, Lookup, Object, Rule};
use crate::rpc::remote::{self, DOMAIN_LIST_MAX, DOMAIN_MIN_SIZE, Domain, STRING_MAX, Uuid, proc};
use crate::rpc::wire::{self, Header};
use crate::rpc::xdr::{Reader, Writer};

use super::errors::bounded;
use super::judge::{DomainArg, DomainCall, Need};
use super::pending::{Await, LookupOf};
use super::stream::StreamKind;
use super::{Call, End, Filter, Grants, Out, procedure_label};

impl Filter {
    /// A call of the remote program: forwarded as it is or rewritten, judged by its
    /// domain, or answered here, by its rule; a procedure without one is denied.
    pub(super) fn call(
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
