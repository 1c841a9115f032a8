//! The daemon's replies: each matched to the call it answers (by the filter's serial and
//! the procedure sent), then passed on under the client's serial, or rewritten: listings
//! and stats carry only visible domains, an invisible lookup's answer and the daemon's own
//! "no such domain" become one error, an old listing is answered from its list-all.

use std::time::Instant;

use crate::rpc::allow::List;
use crate::rpc::remote::{
    self, DOMAIN_LIST_MAX, DOMAIN_MIN_SIZE, DOMAIN_STATS_PARAMS_MAX, Domain, RemoteError,
};
use crate::rpc::wire::{self, Header, Status, Type};
use crate::rpc::xdr::{Reader, Writer};

use super::pending::{Await, LookupOf};
use super::{Call, End, Filter, Grants, Out, procedure_label};

impl Filter {
    /// A reply of the remote program.
    pub(super) fn reply(
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
pub(super) fn pass(mut packet: Vec<u8>, client_serial: u32, out: &mut Vec<Out>) {
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
