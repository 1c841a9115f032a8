//! A call on one domain, judged by the domain's UUID, never by the name sent with it: a
//! read of a freshly learnt visible domain is forwarded at once; anything else is held
//! while an injected lookup asks the daemon which domain the UUID is now, then forwarded
//! or refused by that answer. An unknown or invisible UUID is refused as a missing domain.

use std::time::Instant;

use crate::action::Action;
use crate::rpc::remote::{self, Domain, REMOTE_PROGRAM, REMOTE_VERSION, RemoteError, Uuid, proc};
use crate::rpc::wire::{self, Header, Status, Type};
use crate::rpc::xdr::{Reader, Writer};

use super::errors::bounded;
use super::pending::Await;
use super::stream::StreamKind;
use super::{Call, End, FRESH, Filter, Grants, MAX_HELD, MAX_HELD_BYTES, Out, procedure_label};

/// What a call's domain argument said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DomainArg {
    pub(super) uuid: Uuid,
    pub(super) name: String,
}

/// What a key needs of a domain for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    See,
    Act(Action),
}

/// A client's call on one domain, as it waits for judgement (and, held, for the daemon's
/// answer about its UUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DomainCall {
    /// The client's header and whole packet, forwarded as they are if allowed.
    pub(super) header: Header,
    pub(super) packet: Vec<u8>,
    pub(super) dom: DomainArg,
    pub(super) need: Need,
    /// The stream the call opens, if allowed.
    pub(super) stream: Option<StreamKind>,
}

impl DomainCall {
    /// A call that reads a visible domain and opens no stream.
    pub(super) fn reading(header: Header, packet: Vec<u8>, dom: DomainArg) -> DomainCall {
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
    pub(super) fn judge(
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
    pub(super) fn recheck(
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
