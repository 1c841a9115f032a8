//! libvirt's RPC framing (virnetprotocol.x): a 4-byte big-endian length that counts itself,
//! a header of six 32-bit words, a body. It owns the limits and the incremental
//! [`Deframer`] that turns a byte stream into whole packets.
//!
//! A declared length below the header's size or above libvirt's maximum is refused before
//! anything is allocated for it, and the buffer grows only as bytes arrive. What a body
//! means is not this module's business (see `remote`, `filter`).

use std::fmt;

/// The most a message may hold after its length word (VIR_NET_MESSAGE_MAX).
pub const MESSAGE_MAX: usize = 16_777_216;
/// The length word's own size (VIR_NET_MESSAGE_LEN_MAX).
pub const LEN_SIZE: usize = 4;
/// The header's size on the wire (VIR_NET_MESSAGE_HEADER_MAX).
pub const HEADER_SIZE: usize = 24;
/// The smallest whole packet: a length word and a header, no body.
pub const PACKET_MIN: usize = LEN_SIZE + HEADER_SIZE;
/// The largest whole packet, length word included.
pub const PACKET_MAX: usize = LEN_SIZE + MESSAGE_MAX;
/// The longest string libvirt accepts (VIR_NET_MESSAGE_STRING_MAX, REMOTE_STRING_MAX).
pub const STRING_MAX: u32 = 4_194_304;
/// A legacy payload limit still used for stream chunks (VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX).
pub const LEGACY_PAYLOAD_MAX: usize = 262_144;
/// How many file descriptors one message may carry (VIR_NET_MESSAGE_NUM_FDS_MAX).
pub const NUM_FDS_MAX: u32 = 32;

/// The message type (virNetMessageType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Call,
    Reply,
    Message,
    Stream,
    CallWithFds,
    ReplyWithFds,
    StreamHole,
}

impl Type {
    pub fn from_u32(value: u32) -> Option<Type> {
        Some(match value {
            0 => Type::Call,
            1 => Type::Reply,
            2 => Type::Message,
            3 => Type::Stream,
            4 => Type::CallWithFds,
            5 => Type::ReplyWithFds,
            6 => Type::StreamHole,
            _ => return None,
        })
    }

    pub fn to_u32(self) -> u32 {
        match self {
            Type::Call => 0,
            Type::Reply => 1,
            Type::Message => 2,
            Type::Stream => 3,
            Type::CallWithFds => 4,
            Type::ReplyWithFds => 5,
            Type::StreamHole => 6,
        }
    }
}

/// The message status (virNetMessageStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
    Continue,
}

impl Status {
    pub fn from_u32(value: u32) -> Option<Status> {
        Some(match value {
            0 => Status::Ok,
            1 => Status::Error,
            2 => Status::Continue,
            _ => return None,
        })
    }

    pub fn to_u32(self) -> u32 {
        match self {
            Status::Ok => 0,
            Status::Error => 1,
            Status::Continue => 2,
        }
    }
}

/// A packet's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub prog: u32,
    pub vers: u32,
    pub proc: u32,
    pub kind: Type,
    pub serial: u32,
    pub status: Status,
}

/// Why bytes are not a packet. Each one ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length word says less than a header.
    TooShort(u32),
    /// The length word says more than libvirt allows.
    TooLong(u32),
    /// A type or status that virnetprotocol.x does not define.
    BadHeader { kind: u32, status: u32 },
    /// A slice handed to [`Packet::parse`] whose length is not its length word's.
    LengthMismatch,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooShort(n) => write!(f, "a packet length of {n} is below {PACKET_MIN}"),
            FrameError::TooLong(n) => write!(f, "a packet length of {n} is above {PACKET_MAX}"),
            FrameError::BadHeader { kind, status } => {
                write!(f, "an unknown message type {kind} or status {status}")
            }
            FrameError::LengthMismatch => write!(f, "a packet whose length word is wrong"),
        }
    }
}

impl std::error::Error for FrameError {}

fn word(bytes: &[u8], index: usize) -> Option<u32> {
    let start = index.checked_mul(4)?;
    let b = bytes.get(start..start.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Checks a length word before anything is read or allocated for the packet.
pub fn check_length(declared: u32) -> Result<usize, FrameError> {
    let len = usize::try_from(declared).map_err(|_| FrameError::TooLong(declared))?;
    if len < PACKET_MIN {
        return Err(FrameError::TooShort(declared));
    }
    if len > PACKET_MAX {
        return Err(FrameError::TooLong(declared));
    }
    Ok(len)
}

/// A whole packet, borrowed: its header decoded, its body as bytes.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub header: Header,
    pub body: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Decodes a whole packet (length word included).
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, FrameError> {
        let declared = word(bytes, 0).ok_or(FrameError::LengthMismatch)?;
        let len = check_length(declared)?;
        if len != bytes.len() {
            return Err(FrameError::LengthMismatch);
        }
        let w = |i| word(bytes, i).ok_or(FrameError::LengthMismatch);
        let (kind, status) = (w(4)?, w(6)?);
        let header = Header {
            prog: w(1)?,
            vers: w(2)?,
            proc: w(3)?,
            kind: Type::from_u32(kind).ok_or(FrameError::BadHeader { kind, status })?,
            serial: w(5)?,
            status: Status::from_u32(status).ok_or(FrameError::BadHeader { kind, status })?,
        };
        let body = bytes.get(PACKET_MIN..).ok_or(FrameError::LengthMismatch)?;
        Ok(Packet { header, body })
    }
}

/// Builds a whole packet from a header and a body. The body of anything this crate builds
/// is far below [`MESSAGE_MAX`]; a longer one is a bug and yields an empty-bodied packet
/// rather than a frame libvirt would refuse.
pub fn encode(header: &Header, body: &[u8]) -> Vec<u8> {
    let body = if body.len() > MESSAGE_MAX - HEADER_SIZE {
        &[][..]
    } else {
        body
    };
    let total = PACKET_MIN + body.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    for value in [
        header.prog,
        header.vers,
        header.proc,
        header.kind.to_u32(),
        header.serial,
        header.status.to_u32(),
    ] {
        out.extend_from_slice(&value.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// Rewrites the serial of a whole packet in place (bytes 20..24). A slice too short to be
/// a packet is left alone.
pub fn set_serial(packet: &mut [u8], serial: u32) {
    if let Some(slot) = packet.get_mut(20..24) {
        slot.copy_from_slice(&serial.to_be_bytes());
    }
}

/// Turns a byte stream into whole packets as the bytes arrive.
///
/// Memory: the buffer holds at most one partial packet plus what one `feed` brought, and
/// is given back after a large packet so a long connection stays flat.
#[derive(Debug, Default)]
pub struct Deframer {
    buffer: Vec<u8>,
    /// Where the first unconsumed byte is.
    start: usize,
}

/// A buffer bigger than this is shrunk once it is empty again.
const KEEP_CAPACITY: usize = 256 * 1024;

impl Deframer {
    pub fn new() -> Deframer {
        Deframer::default()
    }

    /// Adds bytes as they arrived.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buffer.extend_from_slice(bytes);
    }

    /// How many bytes wait for the rest of their packet.
    pub fn pending(&self) -> usize {
        self.buffer.len().saturating_sub(self.start)
    }

    /// The next whole packet, `Ok(None)` until one is complete, or the error that ends the
    /// stream (checked as soon as the length word is in).
    pub fn next_packet(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let rest = self.buffer.get(self.start..).unwrap_or_default();
        let Some(declared) = word(rest, 0) else {
            return Ok(None);
        };
        let len = check_length(declared)?;
        let Some(packet) = rest.get(..len) else {
            return Ok(None);
        };
        let packet = packet.to_vec();
        self.start = self.start.saturating_add(len);
        if self.pending() == 0 {
            self.buffer.clear();
            self.start = 0;
            if self.buffer.capacity() > KEEP_CAPACITY {
                self.buffer.shrink_to(KEEP_CAPACITY);
            }
        }
        Ok(Some(packet))
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buffer.drain(..self.start.min(self.buffer.len()));
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: Type, status: Status) -> Header {
        Header {
            prog: 0x2000_8086,
            vers: 1,
            proc: 3,
            kind,
            serial: 7,
            status,
        }
    }

    #[test]
    fn a_packet_round_trips_and_its_serial_can_be_rewritten() {
        let mut bytes = encode(&header(Type::Call, Status::Ok), b"body");
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[..4], &[0, 0, 0, 32]);
        set_serial(&mut bytes, 99);
        let packet = Packet::parse(&bytes).expect("a packet");
        assert_eq!(packet.header.serial, 99);
        assert_eq!(packet.header.proc, 3);
        assert_eq!(packet.body, b"body");
    }

    #[test]
    fn lengths_outside_libvirts_limits_end_the_stream_before_allocation() {
        let cases: &[(u32, Option<FrameError>)] = &[
            (0, Some(FrameError::TooShort(0))),
            (4, Some(FrameError::TooShort(4))),
            (27, Some(FrameError::TooShort(27))),
            (28, None),
            (PACKET_MAX as u32, None),
            (
                PACKET_MAX as u32 + 1,
                Some(FrameError::TooLong(PACKET_MAX as u32 + 1)),
            ),
            (0x7fff_ffff, Some(FrameError::TooLong(0x7fff_ffff))),
            (u32::MAX, Some(FrameError::TooLong(u32::MAX))),
        ];
        for (declared, expected) in cases {
            let mut d = Deframer::new();
            d.feed(&declared.to_be_bytes());
            let got = d.next_packet();
            match expected {
                Some(error) => assert_eq!(got.as_ref().err(), Some(error), "{declared}"),
                None => assert_eq!(got, Ok(None), "{declared}: waits for the rest"),
            }
            // Nothing beyond what arrived was reserved.
            assert!(d.buffer.capacity() < 1024, "{declared}");
        }
    }

    #[test]
    fn packets_split_anywhere_come_out_whole_and_in_order() {
        let a = encode(&header(Type::Call, Status::Ok), b"first");
        let b = encode(&header(Type::Reply, Status::Error), &[9; 300]);
        let stream: Vec<u8> = [a.clone(), b.clone()].concat();
        for chunk in [1, 2, 3, 5, 28, 33, 1000] {
            let mut d = Deframer::new();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                d.feed(piece);
                while let Some(p) = d.next_packet().expect("valid") {
                    out.push(p);
                }
            }
            assert_eq!(out, vec![a.clone(), b.clone()], "chunk {chunk}");
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn unknown_types_and_statuses_are_refused() {
        for (kind, status) in [(7u32, 0u32), (0, 3), (u32::MAX, 0)] {
            let mut bytes = encode(&header(Type::Call, Status::Ok), b"");
            bytes[16..20].copy_from_slice(&kind.to_be_bytes());
            bytes[24..28].copy_from_slice(&status.to_be_bytes());
            assert_eq!(
                Packet::parse(&bytes).err(),
                Some(FrameError::BadHeader { kind, status })
            );
        }
        assert_eq!(
            Packet::parse(&[0, 0, 0, 28]).err(),
            Some(FrameError::LengthMismatch)
        );
        assert_eq!(Packet::parse(&[]).err(), Some(FrameError::LengthMismatch));
    }
}
