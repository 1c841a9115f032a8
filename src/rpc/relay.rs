//! The one effectful part of the RPC filter: a single-threaded poll loop between the
//! client's channel (stdin and stdout, or one socket for both) and a unix socket to the
//! daemon, driving a [`Filter`] packet by packet.
//!
//! Memory stays flat: each direction holds at most [`BUFFER`] bytes waiting to be written
//! plus the packet being decided, and a side is read only while its queue has room. The
//! caller's [`Context`] gives the current grants (asked before every batch of packets and
//! at least every [`GRANTS_EVERY`], so revocation and a broken config end or narrow the
//! connection) and takes the audit records. What is allowed is the filter's business.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::filter::{Call, End, Filter, Grants, Out};
use super::wire::Deframer;

/// Bytes each direction may hold waiting to be written before its reader pauses.
pub const BUFFER: usize = 256 * 1024;
/// How many bytes one read takes.
const CHUNK: usize = 64 * 1024;
/// The most written to a blocking channel at once: what a pipe that poll calls writable
/// always takes without blocking.
const PIPE_BUF: usize = 4096;
/// How often the grants are asked for even when nothing moves (the contract: 10 s).
pub const GRANTS_EVERY: Duration = Duration::from_secs(5);
/// How often an idle loop still looks for a hang-up.
const HANG_UP_EVERY: Duration = Duration::from_millis(250);

/// What the relay needs from the gateway.
pub trait Context {
    /// The key's grants now. The caller re-reads its config as it sees fit (cached is
    /// fine); an `Err` (the config no longer loads, the key is gone) ends the connection.
    fn grants(&mut self) -> Result<&dyn Grants, String>;
    /// One audit record.
    fn audit(&mut self, call: &Call);
    /// Whether to stop now (a hang-up signal, say).
    fn hung_up(&self) -> bool {
        false
    }
}

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The client closed its side.
    ClientClosed,
    /// The daemon closed its side (after what it sent was delivered).
    DaemonClosed,
    /// The filter ended it: a malformed or unexpected packet, a limit.
    Refused(End),
    /// The grants could not be had.
    Revoked(String),
    /// Reading or writing failed.
    Failed(String),
    /// Told to stop.
    HungUp,
}

/// Bytes waiting to be written one way.
#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
}

impl Queue {
    fn has_room(&self) -> bool {
        self.bytes.len() < BUFFER
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn push(&mut self, packet: &[u8]) {
        self.bytes.extend_from_slice(packet);
    }

    /// Writes once from the front, at most `limit` bytes.
    fn drain(
        &mut self,
        limit: usize,
        write: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> io::Result<()> {
        let chunk = self.bytes.len().min(limit);
        match write(self.bytes.get(..chunk).unwrap_or_default()) {
            Ok(n) => {
                self.bytes.drain(..n.min(self.bytes.len()));
                if self.bytes.is_empty() && self.bytes.capacity() > 4 * BUFFER {
                    self.bytes.shrink_to(BUFFER);
                }
                Ok(())
            }
            Err(error) if transient(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

fn transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Reads once; `Ok(None)` at the end of input, `Ok(Some(0))` when nothing was ready.
fn read_once(
    read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    scratch: &mut [u8],
) -> io::Result<Option<usize>> {
    match read(scratch) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(error) if transient(&error) => Ok(Some(0)),
        Err(error) => Err(error),
    }
}

fn woke(fd: &PollFd<'_>, ready: PollFlags) -> bool {
    fd.revents()
        .is_some_and(|r| r.intersects(ready | PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Which side a packet came from.
#[derive(Clone, Copy)]
enum Side {
    Client,
    Daemon,
}

/// What each side is polled for.
struct Interest {
    client_in: PollFlags,
    daemon: PollFlags,
    client_out: PollFlags,
}

/// What poll found ready, among what was asked.
struct Woken {
    client_readable: bool,
    daemon_readable: bool,
    daemon_writable: bool,
    client_writable: bool,
}

/// Where a relay writes to the user's channel, and whether that write can block. Both
/// relays (this one and `display`'s) write through it.
#[derive(Clone, Copy)]
pub struct ClientOut<'a> {
    pub fd: BorrowedFd<'a>,
    /// `fd` never blocks (an open file description with `O_NONBLOCK` that only this
    /// process writes through): one write carries whatever the channel takes. Otherwise a
    /// write after poll carries at most `PIPE_BUF` bytes, so that a relay never blocks on
    /// a slow client and keeps watching the grants and the hang-up.
    pub nonblocking: bool,
}

impl ClientOut<'_> {
    /// The most one write after poll may carry.
    pub fn write_limit(self) -> usize {
        if self.nonblocking {
            usize::MAX
        } else {
            PIPE_BUF
        }
    }
}

/// One relay's state between two polls.
struct Relay<'a> {
    from_client: BorrowedFd<'a>,
    to_client: ClientOut<'a>,
    daemon: &'a mut UnixStream,
    filter: &'a mut Filter,
    context: &'a mut dyn Context,
    scratch: Vec<u8>,
    from_client_frames: Deframer,
    from_daemon_frames: Deframer,
    to_daemon: Queue,
    to_client_queue: Queue,
    client_open: bool,
    daemon_open: bool,
    next_grants: Instant,
}

/// Relays between the client (`from_client`, `to_client`) and the daemon's socket through
/// `filter` until one side closes, the filter ends it, or `context` says stop.
pub fn relay(
    from_client: BorrowedFd<'_>,
    to_client: ClientOut<'_>,
    daemon: &mut UnixStream,
    filter: &mut Filter,
    context: &mut dyn Context,
) -> Ending {
    if let Err(error) = daemon.set_nonblocking(true) {
        return Ending::Failed(format!("the daemon's socket: {error}"));
    }
    let mut relay = Relay {
        from_client,
        to_client,
        daemon,
        filter,
        context,
        scratch: vec![0u8; CHUNK],
        from_client_frames: Deframer::new(),
        from_daemon_frames: Deframer::new(),
        to_daemon: Queue::default(),
        to_client_queue: Queue::default(),
        client_open: true,
        daemon_open: true,
        next_grants: Instant::now(),
    };
    loop {
        if let Err(ending) = relay.turn() {
            return ending;
        }
    }
}

impl Relay<'_> {
    /// One turn of the loop: whether to go on, a poll, then each side that woke, in
    /// order. `Err` is how the relay ends.
    fn turn(&mut self) -> Result<(), Ending> {
        if self.context.hung_up() {
            return Err(Ending::HungUp);
        }
        self.refresh_grants()?;
        if !self.client_open {
            return Err(Ending::ClientClosed);
        }
        if !self.daemon_open && self.to_client_queue.is_empty() {
            return Err(Ending::DaemonClosed);
        }
        let woken = self.wait()?;
        if woken.client_readable {
            self.read_client()?;
        }
        if woken.daemon_readable {
            self.read_daemon()?;
        }
        if woken.daemon_writable {
            self.write_daemon()?;
        }
        if woken.client_writable {
            self.write_client()?;
        }
        Ok(())
    }

    /// Asks for the grants when [`GRANTS_EVERY`] has passed since the last time, even
    /// when nothing moves: grants that cannot be had end the relay.
    fn refresh_grants(&mut self) -> Result<(), Ending> {
        if Instant::now() >= self.next_grants {
            self.context.grants().map_err(Ending::Revoked)?;
            self.next_grants = Instant::now() + GRANTS_EVERY;
        }
        Ok(())
    }

    /// What to poll each side for: a side is read only while the queue it feeds has room
    /// (and the daemon is open), written only while its queue holds bytes.
    fn interest(&self) -> Interest {
        let client_in = if self.to_daemon.has_room() && self.daemon_open {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        let mut daemon = PollFlags::empty();
        if self.daemon_open && self.to_client_queue.has_room() {
            daemon |= PollFlags::POLLIN;
        }
        if self.daemon_open && !self.to_daemon.is_empty() {
            daemon |= PollFlags::POLLOUT;
        }
        let client_out = if self.to_client_queue.is_empty() {
            PollFlags::empty()
        } else {
            PollFlags::POLLOUT
        };
        Interest {
            client_in,
            daemon,
            client_out,
        }
    }

    /// Polls until a side is ready, the grants are due, or [`HANG_UP_EVERY`] passes.
    fn wait(&self) -> Result<Woken, Ending> {
        let interest = self.interest();
        let mut fds = [
            PollFd::new(self.from_client, interest.client_in),
            PollFd::new(self.daemon.as_fd(), interest.daemon),
            PollFd::new(self.to_client.fd, interest.client_out),
        ];
        let wait = self
            .next_grants
            .saturating_duration_since(Instant::now())
            .min(HANG_UP_EVERY);
        match poll(
            &mut fds,
            PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(error) => return Err(Ending::Failed(format!("poll: {error}"))),
        }
        let [client_in, daemon, client_out] = &fds;
        Ok(Woken {
            client_readable: interest.client_in.contains(PollFlags::POLLIN)
                && woke(client_in, PollFlags::POLLIN),
            daemon_readable: interest.daemon.contains(PollFlags::POLLIN)
                && woke(daemon, PollFlags::POLLIN),
            daemon_writable: interest.daemon.contains(PollFlags::POLLOUT)
                && woke(daemon, PollFlags::POLLOUT),
            client_writable: interest.client_out.contains(PollFlags::POLLOUT)
                && woke(client_out, PollFlags::POLLOUT),
        })
    }

    /// Reads what the client sent (its end closes its side) and judges the whole packets.
    fn read_client(&mut self) -> Result<(), Ending> {
        let from_client = self.from_client;
        let read = |into: &mut [u8]| nix::unistd::read(from_client, into).map_err(io::Error::from);
        match read_once(read, &mut self.scratch) {
            Ok(Some(n)) => self
                .from_client_frames
                .feed(self.scratch.get(..n).unwrap_or_default()),
            Ok(None) | Err(_) => self.client_open = false,
        }
        let packets = self.from_client_frames.next_packets();
        self.decide(packets, Side::Client)
    }

    /// Reads what the daemon sent (its end closes its side) and judges the whole packets.
    fn read_daemon(&mut self) -> Result<(), Ending> {
        let daemon = &mut *self.daemon;
        match read_once(|into| daemon.read(into), &mut self.scratch) {
            Ok(Some(n)) => self
                .from_daemon_frames
                .feed(self.scratch.get(..n).unwrap_or_default()),
            Ok(None) | Err(_) => self.daemon_open = false,
        }
        let packets = self.from_daemon_frames.next_packets();
        self.decide(packets, Side::Daemon)
    }

    /// Writes once to the daemon what is queued for it.
    fn write_daemon(&mut self) -> Result<(), Ending> {
        let daemon = &mut *self.daemon;
        self.to_daemon
            .drain(BUFFER, |from| daemon.write(from))
            .map_err(|error| Ending::Failed(format!("writing to the daemon: {error}")))
    }

    /// Writes once to the client what is queued for it; failing, the client is gone.
    fn write_client(&mut self) -> Result<(), Ending> {
        let to_client = self.to_client;
        let write = |from: &[u8]| nix::unistd::write(to_client.fd, from).map_err(io::Error::from);
        self.to_client_queue
            .drain(to_client.write_limit(), write)
            .map_err(|_| Ending::ClientClosed)
    }

    /// Judges the whole packets that arrived from one side and queues what the filter says.
    fn decide(&mut self, packets: Result<Vec<Vec<u8>>, End>, side: Side) -> Result<(), Ending> {
        let packets = packets.map_err(Ending::Refused)?;
        if packets.is_empty() {
            return Ok(());
        }
        let mut audits = Vec::new();
        {
            let grants = self.context.grants().map_err(Ending::Revoked)?;
            let now = Instant::now();
            for packet in packets {
                let outs = match side {
                    Side::Client => self.filter.from_client(packet, grants, now),
                    Side::Daemon => self.filter.from_daemon(packet, grants, now),
                }
                .map_err(Ending::Refused)?;
                for out in outs {
                    match out {
                        Out::ToDaemon(bytes) => self.to_daemon.push(&bytes),
                        Out::ToClient(bytes) => self.to_client_queue.push(&bytes),
                        Out::Audit(call) => audits.push(call),
                    }
                }
            }
        }
        for call in &audits {
            self.context.audit(call);
        }
        Ok(())
    }
}

impl Deframer {
    /// Every whole packet that has arrived, or the error that ends the stream.
    fn next_packets(&mut self) -> Result<Vec<Vec<u8>>, End> {
        let mut packets = Vec::new();
        while let Some(packet) = self.next_packet()? {
            packets.push(packet);
        }
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;
    use crate::rpc::remote::{REMOTE_PROGRAM, proc};
    use crate::rpc::wire::{self, Header, Packet, Status, Type};
    use std::thread;

    struct Everything;
    impl Grants for Everything {
        fn may_see(&self, _: &str) -> bool {
            true
        }
        fn may(&self, _: Action, _: &str) -> bool {
            true
        }
    }

    struct Recorder {
        grants: Everything,
        calls: Vec<Call>,
        revoked: bool,
    }

    impl Context for Recorder {
        fn grants(&mut self) -> Result<&dyn Grants, String> {
            if self.revoked {
                Err("the config no longer loads".into())
            } else {
                Ok(&self.grants)
            }
        }
        fn audit(&mut self, call: &Call) {
            self.calls.push(call.clone());
        }
    }

    fn call(proc: u32, serial: u32) -> Vec<u8> {
        let header = Header {
            prog: REMOTE_PROGRAM,
            vers: 1,
            proc,
            kind: Type::Call,
            serial,
            status: Status::Ok,
        };
        wire::encode(&header, b"")
    }

    fn read_packet(stream: &mut UnixStream) -> Vec<u8> {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).expect("a length");
        let mut rest = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        stream.read_exact(&mut rest).expect("a packet");
        [len.to_vec(), rest].concat()
    }

    /// A relay in a thread: the test holds the client's end and the daemon's end.
    fn relaying(
        revoked: bool,
    ) -> (
        UnixStream,
        UnixStream,
        thread::JoinHandle<(Ending, Vec<Call>)>,
    ) {
        let (client, relay_client) = UnixStream::pair().expect("pair");
        let (daemon, mut relay_daemon) = UnixStream::pair().expect("pair");
        let handle = thread::spawn(move || {
            let mut filter = Filter::new("test:///default");
            let mut context = Recorder {
                grants: Everything,
                calls: Vec::new(),
                revoked,
            };
            let to_client = ClientOut {
                fd: relay_client.as_fd(),
                nonblocking: false,
            };
            let ending = relay(
                relay_client.as_fd(),
                to_client,
                &mut relay_daemon,
                &mut filter,
                &mut context,
            );
            (ending, context.calls)
        });
        (client, daemon, handle)
    }

    #[test]
    fn calls_and_replies_cross_with_serials_mapped_and_denials_answered_locally() {
        let (mut client, mut daemon, handle) = relaying(false);
        client.write_all(&call(3, 41)).expect("write");
        let sent = read_packet(&mut daemon);
        let header = Packet::parse(&sent).expect("packet").header;
        assert_eq!(header.proc, 3);
        let mut answer = wire::encode(
            &Header {
                kind: Type::Reply,
                ..header
            },
            b"",
        );
        wire::set_serial(&mut answer, header.serial);
        daemon.write_all(&answer).expect("write");
        let got = read_packet(&mut client);
        assert_eq!(Packet::parse(&got).expect("packet").header.serial, 41);
        // A denied call is answered without the daemon, and audited.
        client.write_all(&call(11, 42)).expect("write");
        let got = read_packet(&mut client);
        assert_eq!(
            Packet::parse(&got).expect("packet").header.status,
            Status::Error
        );
        drop(client);
        let (ending, calls) = handle.join().expect("relay");
        assert_eq!(ending, Ending::ClientClosed);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].procedure, "DOMAIN_DEFINE_XML");
    }

    #[test]
    fn garbage_ends_it_and_nothing_reaches_the_daemon() {
        let (mut client, mut daemon, handle) = relaying(false);
        client
            .write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3])
            .expect("write");
        let (ending, _) = handle.join().expect("relay");
        assert!(
            matches!(ending, Ending::Refused(End::Malformed(_))),
            "{ending:?}"
        );
        daemon.set_nonblocking(true).expect("nonblocking");
        let mut got = [0u8; 1];
        assert!(matches!(daemon.read(&mut got), Ok(0)), "nothing forwarded");
        let _ = proc::CONNECT_OPEN;
    }

    #[test]
    fn grants_that_cannot_be_had_end_it() {
        let (_client, _daemon, handle) = relaying(true);
        let (ending, _) = handle.join().expect("relay");
        assert_eq!(ending, Ending::Revoked("the config no longer loads".into()));
    }
}
