//! A small, bounded XDR (RFC 4506) reader and writer: the types libvirt's RPC bodies use
//! that the filter must read or rewrite (integers, booleans, opaque data, strings, optional
//! `*` pointers, counted arrays).
//!
//! Every length is checked against its declared maximum *and* the bytes that remain before
//! anything is taken or allocated, and every read returns `Err` instead of panicking. This
//! module knows no libvirt type; `remote` builds those from these pieces.

use std::fmt;

/// Why a body could not be read: it ended early, or a length broke its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdrError {
    /// Fewer bytes remain than the value needs.
    Truncated,
    /// A declared length is above the type's maximum.
    TooLong { declared: u32, max: u32 },
    /// A value that must be one of a few (a bool, an optional's flag, a union's tag) is not.
    BadValue(u32),
    /// Bytes remain after the last field.
    Trailing(usize),
    /// A string is not UTF-8 (libvirt's names are).
    NotUtf8,
}

impl fmt::Display for XdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdrError::Truncated => write!(f, "the body ends early"),
            XdrError::TooLong { declared, max } => {
                write!(f, "a length of {declared} is above its maximum {max}")
            }
            XdrError::BadValue(v) => write!(f, "an unexpected value {v}"),
            XdrError::Trailing(n) => write!(f, "{n} bytes after the last field"),
            XdrError::NotUtf8 => write!(f, "a string that is not UTF-8"),
        }
    }
}

impl std::error::Error for XdrError {}

/// Reads XDR values from the front of a byte slice, never past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// The padding that follows `len` bytes of opaque data: up to the next multiple of four.
fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    /// How far into the slice the reader is.
    pub fn position(&self) -> usize {
        self.at
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    /// `Ok` only if every byte was read.
    pub fn finish(&self) -> Result<(), XdrError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(XdrError::Trailing(n)),
        }
    }

    /// Takes exactly `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let end = self.at.checked_add(n).ok_or(XdrError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(XdrError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    pub fn u32(&mut self) -> Result<u32, XdrError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i32(&mut self) -> Result<i32, XdrError> {
        Ok(self.u32()? as i32)
    }

    pub fn u64(&mut self) -> Result<u64, XdrError> {
        let high = u64::from(self.u32()?);
        let low = u64::from(self.u32()?);
        Ok(high << 32 | low)
    }

    pub fn i64(&mut self) -> Result<i64, XdrError> {
        Ok(self.u64()? as i64)
    }

    pub fn bool(&mut self) -> Result<bool, XdrError> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(XdrError::BadValue(other)),
        }
    }

    /// Fixed-length opaque data of `n` bytes (and its padding).
    pub fn opaque_fixed(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let data = self.take(n)?;
        self.take(padding(n))?;
        Ok(data)
    }

    /// A length word, checked against `max` and against the bytes that remain.
    fn length(&mut self, max: u32, unit: usize) -> Result<usize, XdrError> {
        let declared = self.u32()?;
        if declared > max {
            return Err(XdrError::TooLong { declared, max });
        }
        let len = usize::try_from(declared).map_err(|_| XdrError::Truncated)?;
        let needed = len.checked_mul(unit).ok_or(XdrError::Truncated)?;
        if needed > self.remaining() {
            return Err(XdrError::Truncated);
        }
        Ok(len)
    }

    /// Variable-length opaque data of at most `max` bytes.
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        let len = self.length(max, 1)?;
        self.opaque_fixed(len)
    }

    /// A string of at most `max` bytes, as UTF-8.
    pub fn string(&mut self, max: u32) -> Result<&'a str, XdrError> {
        std::str::from_utf8(self.opaque(max)?).map_err(|_| XdrError::NotUtf8)
    }

    /// The flag of an optional (`*`) value: whether the value follows.
    pub fn optional(&mut self) -> Result<bool, XdrError> {
        self.bool()
    }

    /// The count of an array of at most `max` elements, each at least `min_size` bytes on
    /// the wire (so a count the remaining bytes cannot hold is refused before any loop).
    pub fn count(&mut self, max: u32, min_size: usize) -> Result<usize, XdrError> {
        self.length(max, min_size.max(1))
    }
}

/// Writes XDR values to a growing buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn u32(&mut self, value: u32) -> &mut Writer {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn i32(&mut self, value: i32) -> &mut Writer {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn u64(&mut self, value: u64) -> &mut Writer {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn bool(&mut self, value: bool) -> &mut Writer {
        self.u32(u32::from(value))
    }

    /// Bytes already in XDR form, as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Writer {
        self.bytes.extend_from_slice(bytes);
        self
    }

    pub fn opaque_fixed(&mut self, data: &[u8]) -> &mut Writer {
        self.bytes.extend_from_slice(data);
        self.bytes.resize(self.bytes.len() + padding(data.len()), 0);
        self
    }

    /// Variable-length opaque data. The caller keeps `data` within the type's maximum,
    /// which is far below `u32::MAX`; a longer slice is cut at `u32::MAX` bytes.
    pub fn opaque(&mut self, data: &[u8]) -> &mut Writer {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let data = data.get(..len as usize).unwrap_or(data);
        self.u32(len);
        self.opaque_fixed(data)
    }

    pub fn string(&mut self, text: &str) -> &mut Writer {
        self.opaque(text.as_bytes())
    }

    /// An optional string: absent, or present with its value.
    pub fn optional_string(&mut self, text: Option<&str>) -> &mut Writer {
        match text {
            None => self.bool(false),
            Some(text) => self.bool(true).string(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_big_endian() {
        let mut w = Writer::new();
        w.u32(0xdead_beef)
            .i32(-2)
            .u64(0x0102_0304_0506_0708)
            .bool(true);
        let bytes = w.into_bytes();
        assert_eq!(&bytes[..4], &[0xde, 0xad, 0xbe, 0xef]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u32(), Ok(0xdead_beef));
        assert_eq!(r.i32(), Ok(-2));
        assert_eq!(r.u64(), Ok(0x0102_0304_0506_0708));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn strings_and_opaque_are_padded_to_four() {
        for (text, wire_len) in [("", 4), ("a", 8), ("abcd", 8), ("abcde", 12)] {
            let mut w = Writer::new();
            w.string(text);
            let bytes = w.into_bytes();
            assert_eq!(bytes.len(), wire_len, "{text:?}");
            let mut r = Reader::new(&bytes);
            assert_eq!(r.string(100), Ok(text));
            assert_eq!(r.finish(), Ok(()));
        }
        let mut w = Writer::new();
        w.opaque_fixed(&[1; 16])
            .optional_string(None)
            .optional_string(Some("x"));
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.opaque_fixed(16), Ok(&[1u8; 16][..]));
        assert_eq!(r.optional(), Ok(false));
        assert_eq!(r.optional(), Ok(true));
        assert_eq!(r.string(1), Ok("x"));
    }

    #[test]
    fn hostile_lengths_are_refused_before_use() {
        let cases: &[(&[u8], u32, XdrError)] = &[
            (&[], 10, XdrError::Truncated),
            (&[0, 0, 0], 10, XdrError::Truncated),
            (
                &[0, 0, 0, 11],
                10,
                XdrError::TooLong {
                    declared: 11,
                    max: 10,
                },
            ),
            (&[0x7f, 0xff, 0xff, 0xff], u32::MAX, XdrError::Truncated),
            (&[0xff, 0xff, 0xff, 0xff], u32::MAX, XdrError::Truncated),
            (
                &[0, 0, 0, 5, b'a', b'b', b'c', b'd'],
                10,
                XdrError::Truncated,
            ),
            // The data is there but its padding is not.
            (&[0, 0, 0, 1, b'a'], 10, XdrError::Truncated),
            (&[0, 0, 0, 2, 0xff, 0xfe, 0, 0], 10, XdrError::NotUtf8),
        ];
        for (bytes, max, expected) in cases {
            let mut r = Reader::new(bytes);
            assert_eq!(r.string(*max).err().as_ref(), Some(expected), "{bytes:?}");
        }
        // A count whose elements cannot fit in what remains.
        let mut r = Reader::new(&[0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(r.count(16, 4), Err(XdrError::Truncated));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            r.count(u32::MAX, usize::MAX),
            Err(XdrError::Truncated),
            "no overflow"
        );
        let mut r = Reader::new(&[0, 0, 0, 2]);
        assert_eq!(r.bool(), Err(XdrError::BadValue(2)));
        let mut r = Reader::new(&[0, 0, 0, 1, 9]);
        r.u32().unwrap();
        assert_eq!(r.finish(), Err(XdrError::Trailing(1)));
    }
}
