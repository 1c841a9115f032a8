//! The streams that allowed calls opened (a screenshot's, from the daemon only; a
//! console's, both ways): each packet is matched to its stream by serial and procedure and
//! relayed under the other side's serial. A stream never opened, data into a screenshot,
//! or a client packet after its finish ends the connection; at most [`MAX_STREAMS`].

use crate::rpc::wire::{self, Header, Status};

use super::reply::pass;
use super::{End, Filter, MAX_STREAMS, Out};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamKind {
    /// Data from the daemon only.
    Screenshot,
    /// Data both ways.
    Console,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stream {
    kind: StreamKind,
    proc: u32,
    client_serial: u32,
    pub(super) daemon_serial: u32,
    /// The client sent its finish or abort: it sends nothing more.
    client_done: bool,
    /// The daemon sent an end or an error.
    daemon_done: bool,
}

impl Filter {
    /// Registers the stream an allowed call opened.
    pub(super) fn open_stream(
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
    pub(super) fn close_stream(&mut self, client_serial: u32) {
        self.streams.retain(|s| s.client_serial != client_serial);
    }

    /// A stream packet from the client.
    pub(super) fn client_stream(
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
    pub(super) fn daemon_stream(
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
    pub(super) fn stream_reply(
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
