//! The daemon's events (MESSAGEs of the remote program): a domain event reaches the client
//! only if the key may see its domain now, and teaches the filter the domain's name; the
//! connection's own events pass; an event of a kind `allow` does not describe is dropped.

use std::time::Instant;

use crate::rpc::allow::{self, EventShape};
use crate::rpc::remote::Domain;
use crate::rpc::wire::Header;
use crate::rpc::xdr::Reader;

use super::{End, Filter, Grants, Out};

impl Filter {
    pub(super) fn event(
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
