//! `display`: the bytes between the user's SSH channel (stdin, stdout) and a domain's VNC
//! socket, both ways, in one thread.
//!
//! The relay reads nothing it relays: VNC (its version, its security types, a password
//! challenge) passes through as bytes, so a password stays between the viewer and QEMU.
//! Memory is bounded: one [`BUFFER`] each way, and a side is read only while the buffer
//! it fills has room, so a slow reader slows the writer instead of growing a queue. Writes
//! to the channel never block: through a non-blocking description of its own
//! ([`ClientOut`]), or at most `PIPE_BUF` bytes after poll said it is writable; the VNC
//! socket is non-blocking. The relay ends when the viewer's side
//! closes (stdin at its end, stdout gone), when QEMU's side closes (after what it sent is
//! delivered), on a hang-up, or when the [`Watch`] says access was revoked. For VNC it
//! reads the handshake as it passes (`rfb`): a display that names another domain's desktop
//! ends the relay before the viewer sees it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::graphics::{Ending, Endpoint, Traffic};
use crate::hypervisor::{WATCH_EVERY, Watch};
use crate::rfb::{Handshake, Verdict};
use crate::rpc::ClientOut;

/// How many bytes each direction may hold on their way.
const BUFFER: usize = 64 * 1024;
/// How often a relay that sees no traffic still looks for a hang-up.
const HANG_UP_EVERY: Duration = Duration::from_millis(250);

/// How a handshake that names another desktop (or is no VNC at all) ends the relay.
fn wrong(verdict: Verdict) -> Option<Ending> {
    match verdict {
        Verdict::Mismatch(name) => Some(Ending::WrongDisplay(name)),
        Verdict::Malformed => Some(Ending::WrongDisplay("not a VNC server".into())),
        Verdict::Pending | Verdict::Verified | Verdict::Unverifiable => None,
    }
}

/// The display's side: a TCP or unix stream socket.
pub trait Socket: Read + Write + AsFd {}
impl Socket for TcpStream {}
impl Socket for UnixStream {}

/// Bytes on their way one direction: read in at the end, written out from the front.
struct Pending {
    bytes: Vec<u8>,
}

impl Pending {
    fn new() -> Pending {
        Pending {
            bytes: Vec::with_capacity(BUFFER),
        }
    }

    fn has_room(&self) -> bool {
        self.bytes.len() < BUFFER
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Reads once into the free room. `Ok(false)` at the end of input.
    fn fill(&mut self, read: impl FnOnce(&mut [u8]) -> io::Result<usize>) -> io::Result<bool> {
        let start = self.bytes.len();
        self.bytes.resize(BUFFER, 0);
        let result = read(&mut self.bytes[start..]);
        let got = *result.as_ref().unwrap_or(&0);
        self.bytes.truncate(start + got);
        match result {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(error) if is_transient(&error) => Ok(true),
            Err(error) => Err(error),
        }
    }

    /// Writes once from the front, at most `limit` bytes; how many went.
    fn drain(
        &mut self,
        limit: usize,
        write: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> io::Result<u64> {
        let chunk = self.bytes.len().min(limit);
        match write(&self.bytes[..chunk]) {
            Ok(n) => {
                self.bytes.drain(..n);
                Ok(n as u64)
            }
            Err(error) if is_transient(&error) => Ok(0),
            Err(error) => Err(error),
        }
    }
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn read_fd(fd: BorrowedFd<'_>, into: &mut [u8]) -> io::Result<usize> {
    nix::unistd::read(fd, into).map_err(io::Error::from)
}

fn write_fd(fd: BorrowedFd<'_>, from: &[u8]) -> io::Result<usize> {
    nix::unistd::write(fd, from).map_err(io::Error::from)
}

/// Whether poll reported something to act on for this fd: readiness, or the end (a read or
/// a write then says which).
fn woke(fd: &PollFd<'_>, ready: PollFlags) -> bool {
    fd.revents()
        .is_some_and(|r| r.intersects(ready | PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Connects to a domain's display, by `deadline`; the socket is non-blocking.
pub fn connect(endpoint: &Endpoint, deadline: Instant) -> io::Result<Box<dyn Socket>> {
    let socket: Box<dyn Socket> = match endpoint {
        Endpoint::Tcp(address) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let stream = TcpStream::connect_timeout(address, left)?;
            stream.set_nonblocking(true)?;
            Box::new(stream)
        }
        Endpoint::Unix(path) => {
            let stream = UnixStream::connect(path)?;
            stream.set_nonblocking(true)?;
            Box::new(stream)
        }
    };
    Ok(socket)
}

/// Relays between the viewer (`from_viewer`, `to_viewer`: the channel's stdin and stdout)
/// and `display` until one of them closes, `hung_up` says the client is gone, or `watch`
/// (asked every [`WATCH_EVERY`]) says the access was revoked.
pub fn relay(
    from_viewer: BorrowedFd<'_>,
    to_viewer: ClientOut<'_>,
    display: &mut dyn Socket,
    watch: &dyn Watch,
    hung_up: &dyn Fn() -> bool,
    mut handshake: Option<&mut Handshake>,
) -> (Ending, Traffic) {
    let started = Instant::now();
    let mut flow = Flow::new();
    let mut next_watch = started + WATCH_EVERY;
    let ending = loop {
        if hung_up() {
            break Ending::HungUp;
        }
        if Instant::now() >= next_watch {
            if let Err(why) = watch.still_allowed() {
                break Ending::Revoked(why);
            }
            next_watch = Instant::now() + WATCH_EVERY;
        }
        if let Some(ending) = flow.ended() {
            break ending;
        }
        let interest = flow.interest();
        let mut fds = interest.poll_fds(from_viewer, display.as_fd(), to_viewer.fd);
        let wait = next_watch
            .saturating_duration_since(Instant::now())
            .min(HANG_UP_EVERY);
        match poll(
            &mut fds,
            PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break Ending::HungUp,
        }
        let woken = interest.woken(&fds);
        let handshake = handshake.as_deref_mut();
        if let Err(ending) = flow.serve(woken, from_viewer, to_viewer, display, handshake) {
            break ending;
        }
    };
    let mut traffic = flow.traffic;
    traffic.lasted = started.elapsed();
    (ending, traffic)
}

/// What the relay holds between two polls: the bytes on their way each direction, which
/// sides are still open, and what has gone through.
struct Flow {
    /// From the viewer, for QEMU.
    upstream: Pending,
    /// From QEMU, for the viewer.
    downstream: Pending,
    viewer_open: bool,
    display_open: bool,
    traffic: Traffic,
}

/// What to ask poll for, each side.
struct Interest {
    viewer_in: PollFlags,
    display: PollFlags,
    viewer_out: PollFlags,
}

/// Which fds poll woke for what was asked.
struct Woken {
    from_viewer: bool,
    display_readable: bool,
    display_writable: bool,
    to_viewer: bool,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            upstream: Pending::new(),
            downstream: Pending::new(),
            viewer_open: true,
            display_open: true,
            traffic: Traffic::default(),
        }
    }

    /// Whether the relay is over because a side closed. The viewer gone: what it sent last
    /// still goes to QEMU. QEMU gone: what it sent last still goes to the viewer.
    fn ended(&self) -> Option<Ending> {
        if !self.viewer_open && (self.upstream.is_empty() || !self.display_open) {
            Some(Ending::ViewerClosed)
        } else if !self.display_open && self.downstream.is_empty() {
            Some(Ending::DisplayClosed)
        } else {
            None
        }
    }

    /// A side is read only while the buffer it fills has room, and written only while
    /// there is something for it.
    fn interest(&self) -> Interest {
        let mut display = PollFlags::empty();
        if self.display_open && self.downstream.has_room() {
            display |= PollFlags::POLLIN;
        }
        if !self.upstream.is_empty() {
            display |= PollFlags::POLLOUT;
        }
        Interest {
            viewer_in: if self.viewer_open && self.upstream.has_room() {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            },
            display,
            viewer_out: if self.downstream.is_empty() {
                PollFlags::empty()
            } else {
                PollFlags::POLLOUT
            },
        }
    }

    /// Reads and writes once on each fd poll woke; `Err` when the relay must end: the
    /// viewer's side is gone, or the VNC handshake names another desktop.
    fn serve(
        &mut self,
        woken: Woken,
        from_viewer: BorrowedFd<'_>,
        to_viewer: ClientOut<'_>,
        display: &mut dyn Socket,
        mut handshake: Option<&mut Handshake>,
    ) -> Result<(), Ending> {
        if woken.from_viewer {
            let before = self.upstream.bytes.len();
            self.viewer_open = self
                .upstream
                .fill(|into| read_fd(from_viewer, into))
                .unwrap_or(false);
            let read = self.upstream.bytes.get(before..).unwrap_or_default();
            if let Some(wrong) = handshake
                .as_deref_mut()
                .and_then(|h| wrong(h.from_client(read)))
            {
                return Err(wrong);
            }
        }
        if woken.display_readable {
            let before = self.downstream.bytes.len();
            self.display_open = self
                .downstream
                .fill(|into| display.read(into))
                .unwrap_or(false);
            let read = self.downstream.bytes.get(before..).unwrap_or_default();
            if let Some(wrong) = handshake.and_then(|h| wrong(h.from_server(read))) {
                // What it said never reaches the viewer.
                self.downstream.bytes.clear();
                return Err(wrong);
            }
        }
        if woken.display_writable {
            match self.upstream.drain(BUFFER, |from| display.write(from)) {
                Ok(sent) => self.traffic.to_display += sent,
                Err(_) => self.display_open = false,
            }
        }
        if woken.to_viewer {
            match self
                .downstream
                .drain(to_viewer.write_limit(), |from| write_fd(to_viewer.fd, from))
            {
                Ok(sent) => self.traffic.to_viewer += sent,
                // The viewer's side is gone: nothing more can reach it.
                Err(_) => return Err(Ending::ViewerClosed),
            }
        }
        if !self.display_open && !self.upstream.is_empty() {
            // QEMU will not read what is left for it.
            self.upstream.bytes.clear();
        }
        Ok(())
    }
}

impl Interest {
    fn poll_fds<'fd>(
        &self,
        from_viewer: BorrowedFd<'fd>,
        display: BorrowedFd<'fd>,
        to_viewer: BorrowedFd<'fd>,
    ) -> [PollFd<'fd>; 3] {
        [
            PollFd::new(from_viewer, self.viewer_in),
            PollFd::new(display, self.display),
            PollFd::new(to_viewer, self.viewer_out),
        ]
    }

    /// What poll said about `fds` (made by [`Interest::poll_fds`]), for what was asked.
    fn woken(&self, fds: &[PollFd<'_>; 3]) -> Woken {
        let [viewer_in, display, viewer_out] = fds;
        Woken {
            from_viewer: self.viewer_in.contains(PollFlags::POLLIN)
                && woke(viewer_in, PollFlags::POLLIN),
            display_readable: self.display.contains(PollFlags::POLLIN)
                && woke(display, PollFlags::POLLIN),
            display_writable: self.display.contains(PollFlags::POLLOUT)
                && woke(display, PollFlags::POLLOUT),
            to_viewer: self.viewer_out.contains(PollFlags::POLLOUT)
                && woke(viewer_out, PollFlags::POLLOUT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Revocation;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    struct Allowed;
    impl Watch for Allowed {
        fn still_allowed(&self) -> Result<(), Revocation> {
            Ok(())
        }
    }

    fn revoked() -> Revocation {
        Revocation::Revoked {
            action: crate::action::Action::Display,
            domain: "web1".into(),
        }
    }

    struct Revoked;
    impl Watch for Revoked {
        fn still_allowed(&self) -> Result<(), Revocation> {
            Err(revoked())
        }
    }

    /// The test's ends of a relay running in a thread: the viewer's (what it writes to the
    /// channel's stdin, what it reads from its stdout) and QEMU's.
    struct Ends {
        viewer_writes: UnixStream,
        viewer_reads: UnixStream,
        qemu: UnixStream,
        relaying: thread::JoinHandle<(Ending, Traffic)>,
    }

    fn relaying(
        watch: impl Watch + Send + 'static,
        hung_up: impl Fn() -> bool + Send + 'static,
    ) -> Ends {
        relaying_checked(watch, hung_up, None)
    }

    fn relaying_checked(
        watch: impl Watch + Send + 'static,
        hung_up: impl Fn() -> bool + Send + 'static,
        mut handshake: Option<Handshake>,
    ) -> Ends {
        let (viewer_writes, stdin) = UnixStream::pair().expect("pair");
        let (viewer_reads, stdout) = UnixStream::pair().expect("pair");
        let (qemu, mut display) = UnixStream::pair().expect("pair");
        display.set_nonblocking(true).expect("nonblocking");
        let relaying = thread::spawn(move || {
            let to_viewer = ClientOut {
                fd: stdout.as_fd(),
                nonblocking: false,
            };
            relay(
                stdin.as_fd(),
                to_viewer,
                &mut display,
                &watch,
                &hung_up,
                handshake.as_mut(),
            )
        });
        Ends {
            viewer_writes,
            viewer_reads,
            qemu,
            relaying,
        }
    }

    fn never() -> bool {
        false
    }

    #[test]
    fn bytes_pass_both_ways_and_qemu_closing_ends_it_after_delivery() {
        let Ends {
            mut viewer_writes,
            mut viewer_reads,
            mut qemu,
            relaying,
        } = relaying(Allowed, never);
        qemu.write_all(b"RFB 003.008\n").expect("qemu writes");
        let mut version = [0u8; 12];
        viewer_reads.read_exact(&mut version).expect("viewer reads");
        assert_eq!(&version, b"RFB 003.008\n");
        viewer_writes
            .write_all(b"RFB 003.008\n")
            .expect("viewer writes");
        let mut answer = [0u8; 12];
        qemu.read_exact(&mut answer).expect("qemu reads");
        assert_eq!(&answer, b"RFB 003.008\n");

        // Far more than the buffers hold, then QEMU leaves: all of it still arrives.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let qemu_writes = thread::spawn(move || {
            qemu.write_all(&sent).expect("qemu writes it all");
        });
        let mut got = vec![0u8; big.len()];
        viewer_reads
            .read_exact(&mut got)
            .expect("viewer reads it all");
        assert!(got == big);
        qemu_writes.join().expect("writer");
        let (ending, traffic) = relaying.join().expect("relay");
        assert_eq!(ending, Ending::DisplayClosed);
        assert_eq!(traffic.to_viewer, 12 + 1_000_000);
        assert_eq!(traffic.to_display, 12);
        let mut rest = Vec::new();
        viewer_reads.read_to_end(&mut rest).expect("the end");
        assert!(rest.is_empty());
    }

    #[test]
    fn the_viewer_closing_ends_it_and_what_it_sent_last_arrives() {
        let Ends {
            mut viewer_writes,
            mut qemu,
            relaying,
            ..
        } = relaying(Allowed, never);
        viewer_writes.write_all(b"bye").expect("viewer writes");
        drop(viewer_writes);
        let (ending, traffic) = relaying.join().expect("relay");
        assert_eq!(ending, Ending::ViewerClosed);
        assert_eq!(traffic.to_display, 3);
        let mut got = [0u8; 3];
        qemu.read_exact(&mut got).expect("qemu reads");
        assert_eq!(&got, b"bye");
    }

    #[test]
    fn a_viewer_that_stops_reading_holds_back_qemu_instead_of_memory() {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stop_relay = stop.clone();
        // The viewer stays connected (its ends held) but reads nothing: QEMU's writes must
        // come to a stop.
        let Ends {
            mut qemu,
            relaying,
            viewer_writes: _still_open,
            viewer_reads: _never_read,
        } = relaying(Allowed, move || stop_relay.load(Ordering::SeqCst));
        qemu.set_nonblocking(true).expect("nonblocking");
        let mut written = 0usize;
        let chunk = [7u8; 64 * 1024];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            match qemu.write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("{e}"),
            }
        }
        // Socket buffers on both sides plus the relay's one buffer, not more.
        assert!(written < 8 * 1024 * 1024, "{written} bytes taken");
        stop.store(true, Ordering::SeqCst);
        let (ending, _) = relaying.join().expect("relay");
        assert_eq!(ending, Ending::HungUp);
    }

    #[test]
    fn revocation_ends_it() {
        let started = Instant::now();
        let ends = relaying(Revoked, never);
        let (ending, _) = ends.relaying.join().expect("relay");
        assert_eq!(ending, Ending::Revoked(revoked()));
        assert!(started.elapsed() < WATCH_EVERY + Duration::from_secs(1));
    }

    #[test]
    fn a_display_naming_another_desktop_is_ended_before_the_viewer_sees_it() {
        use std::io::{Read, Write};
        let ends = relaying_checked(Allowed, never, Some(Handshake::for_domain("web1")));
        let (mut viewer_writes, mut viewer_reads, mut qemu) =
            (ends.viewer_writes, ends.viewer_reads, ends.qemu);
        qemu.write_all(b"RFB 003.008\n\x01\x01").unwrap();
        viewer_writes.write_all(b"RFB 003.008\n\x01").unwrap();
        let mut seen = [0u8; 14];
        viewer_reads.read_exact(&mut seen).unwrap();
        assert_eq!(&seen, b"RFB 003.008\n\x01\x01");
        viewer_writes.write_all(b"\x01").unwrap();
        let mut init = vec![0u8; 4];
        init.extend([0u8; 16]);
        init.extend(11u32.to_be_bytes());
        init.extend(b"QEMU (web2)");
        qemu.write_all(&0u32.to_be_bytes()).unwrap();
        qemu.write_all(&init).unwrap();
        let (ending, _) = ends.relaying.join().expect("relay");
        assert_eq!(ending, Ending::WrongDisplay("QEMU (web2)".into()));
        // Whatever it got after the versions, the viewer never got the other desktop's name.
        viewer_reads
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = viewer_reads.read_to_end(&mut rest);
        assert!(!String::from_utf8_lossy(&rest).contains("web2"), "{rest:?}");
    }
}
