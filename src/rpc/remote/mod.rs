//! The remote program of libvirt (0x20008086, version 1), its neighbours (keepalive, and
//! the qemu and lxc programs, only to name them) and the XDR shapes the filter reads or
//! writes: `remote_nonnull_domain`, `remote_error`, typed parameters, and the few
//! argument and reply bodies that are judged or rewritten.
//!
//! Procedure numbers never change across libvirt versions (remote_protocol.x only
//! appends), so [`PROCEDURES`] — every procedure of libvirt 9.0 with its `@acl:`
//! annotations, as data in `procedures.rs` — serves all versions; a number past its end is
//! unknown. This module decides nothing: `allow` and `filter` do.

use std::fmt;

use super::xdr::{Reader, Writer, XdrError};

pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
pub const REMOTE_VERSION: u32 = 1;
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
pub const KEEPALIVE_VERSION: u32 = 1;
pub const KEEPALIVE_PING: u32 = 1;
pub const KEEPALIVE_PONG: u32 = 2;
pub const QEMU_PROGRAM: u32 = 0x2000_8087;
pub const LXC_PROGRAM: u32 = 0x0006_8000;

/// REMOTE_STRING_MAX.
pub const STRING_MAX: u32 = 4_194_304;
/// REMOTE_DOMAIN_LIST_MAX: the most domains a listing carries.
pub const DOMAIN_LIST_MAX: u32 = 16_384;
/// REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX: the most parameters one stats record carries.
pub const DOMAIN_STATS_PARAMS_MAX: u32 = 262_144;
/// REMOTE_DOMAIN_SEND_KEY_MAX.
pub const SEND_KEY_MAX: u32 = 16;
/// VIR_UUID_BUFLEN.
pub const UUID_LEN: usize = 16;

/// virErrorNumber values the filter writes or recognises.
pub const VIR_ERR_NO_DOMAIN: i32 = 42;
pub const VIR_ERR_ACCESS_DENIED: i32 = 88;
/// virErrorDomain values.
pub const VIR_FROM_QEMU: i32 = 10;
pub const VIR_FROM_TEST: i32 = 12;
pub const VIR_FROM_ACCESS: i32 = 55;
/// virErrorLevel VIR_ERR_ERROR.
pub const VIR_ERR_ERROR: i32 = 2;

/// Procedure numbers the filter names in its rules (REMOTE_PROC_*).
pub mod proc {
    pub const CONNECT_OPEN: u32 = 1;
    pub const CONNECT_CLOSE: u32 = 2;
    pub const DOMAIN_CREATE: u32 = 9;
    pub const DOMAIN_DESTROY: u32 = 12;
    pub const DOMAIN_GET_XML_DESC: u32 = 14;
    pub const CONNECT_LIST_DEFINED_DOMAINS: u32 = 21;
    pub const DOMAIN_LOOKUP_BY_ID: u32 = 22;
    pub const DOMAIN_LOOKUP_BY_NAME: u32 = 23;
    pub const DOMAIN_LOOKUP_BY_UUID: u32 = 24;
    pub const CONNECT_NUM_OF_DEFINED_DOMAINS: u32 = 25;
    pub const DOMAIN_REBOOT: u32 = 27;
    pub const DOMAIN_RESUME: u32 = 28;
    pub const DOMAIN_SHUTDOWN: u32 = 33;
    pub const DOMAIN_SUSPEND: u32 = 34;
    pub const CONNECT_LIST_DOMAINS: u32 = 37;
    pub const CONNECT_NUM_OF_DOMAINS: u32 = 51;
    pub const CONNECT_DOMAIN_EVENT_REGISTER: u32 = 105;
    pub const CONNECT_DOMAIN_EVENT_DEREGISTER: u32 = 106;
    pub const CONNECT_DOMAIN_EVENT_REGISTER_ANY: u32 = 167;
    pub const CONNECT_DOMAIN_EVENT_DEREGISTER_ANY: u32 = 168;
    pub const DOMAIN_CREATE_WITH_FLAGS: u32 = 196;
    pub const DOMAIN_OPEN_CONSOLE: u32 = 201;
    pub const DOMAIN_SCREENSHOT: u32 = 211;
    pub const DOMAIN_SEND_KEY: u32 = 226;
    pub const DOMAIN_DESTROY_FLAGS: u32 = 234;
    pub const DOMAIN_RESET: u32 = 245;
    pub const DOMAIN_SHUTDOWN_FLAGS: u32 = 258;
    pub const CONNECT_LIST_ALL_DOMAINS: u32 = 273;
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: u32 = 316;
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: u32 = 317;
    pub const CONNECT_GET_DOMAIN_CAPABILITIES: u32 = 342;
    pub const CONNECT_GET_ALL_DOMAIN_STATS: u32 = 344;
    pub const CONNECT_EVENT_CONNECTION_CLOSED: u32 = 362;
}

mod procedures;
pub use procedures::PROCEDURES;

/// The procedure's name (`DOMAIN_GET_INFO`), if libvirt 9.0 knows the number.
pub fn procedure_name(number: u32) -> Option<&'static str> {
    let index = usize::try_from(number).ok()?.checked_sub(1)?;
    PROCEDURES.get(index).map(|(name, _)| *name)
}

/// The procedure's `@acl:` annotations, if known.
pub fn procedure_acl(number: u32) -> Option<&'static str> {
    let index = usize::try_from(number).ok()?.checked_sub(1)?;
    PROCEDURES.get(index).map(|(_, acl)| *acl)
}

/// A domain's UUID, as the wire carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; UUID_LEN]);

impl Uuid {
    pub fn read(r: &mut Reader<'_>) -> Result<Uuid, XdrError> {
        let bytes = r.opaque_fixed(UUID_LEN)?;
        let mut uuid = [0u8; UUID_LEN];
        uuid.copy_from_slice(bytes);
        Ok(Uuid(uuid))
    }
}

impl fmt::Display for Uuid {
    /// libvirt's form: 8-4-4-4-12 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// `remote_nonnull_domain`: name, UUID, id (-1 when not running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub uuid: Uuid,
    pub id: i32,
}

/// The fewest bytes a `remote_nonnull_domain` takes: an empty name, the UUID, the id.
pub const DOMAIN_MIN_SIZE: usize = 4 + UUID_LEN + 4;

impl Domain {
    pub fn read(r: &mut Reader<'_>) -> Result<Domain, XdrError> {
        let name = r.string(STRING_MAX)?.to_string();
        let uuid = Uuid::read(r)?;
        let id = r.i32()?;
        Ok(Domain { name, uuid, id })
    }

    pub fn write(&self, w: &mut Writer) {
        w.string(&self.name).opaque_fixed(&self.uuid.0).i32(self.id);
    }
}

/// Skips a `remote_typed_param` (a field name and a tagged value).
pub fn skip_typed_param(r: &mut Reader<'_>) -> Result<(), XdrError> {
    r.string(STRING_MAX)?;
    match r.u32()? {
        1 | 2 | 6 => {
            r.u32()?;
        }
        3..=5 => {
            r.u64()?;
        }
        7 => {
            r.string(STRING_MAX)?;
        }
        other => return Err(XdrError::BadValue(other)),
    }
    Ok(())
}

/// `remote_error`, as far as the filter needs it: what it writes, and the code and origin
/// of what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    pub code: i32,
    pub domain: i32,
    pub message: Option<String>,
    pub level: i32,
    pub str1: Option<String>,
    pub str2: Option<String>,
    pub str3: Option<String>,
    pub int1: i32,
    pub int2: i32,
}

impl RemoteError {
    /// An error as libvirt's `virReportError(code, fmt, ...)` raises it: the message is
    /// the code's text with the detail in it, `str1` the code's text, `str2` the detail,
    /// `int1` and `int2` -1 (util/virerror.c).
    pub fn reported(code: i32, from: i32, template: &str, detail: Option<&str>) -> RemoteError {
        let message = match detail {
            Some(detail) => template.replacen("%s", detail, 1),
            None => template.to_string(),
        };
        RemoteError {
            code,
            domain: from,
            message: Some(message),
            level: VIR_ERR_ERROR,
            str1: Some(template.to_string()),
            str2: detail.map(str::to_string),
            str3: None,
            int1: -1,
            int2: -1,
        }
    }

    pub fn write(&self, w: &mut Writer) {
        w.i32(self.code)
            .i32(self.domain)
            .optional_string(self.message.as_deref())
            .i32(self.level)
            .bool(false) // dom: unused
            .optional_string(self.str1.as_deref())
            .optional_string(self.str2.as_deref())
            .optional_string(self.str3.as_deref())
            .i32(self.int1)
            .i32(self.int2)
            .bool(false); // net: unused
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }

    /// Reads the code and origin of an error body (the rest is passed on, not read).
    pub fn read_code(body: &[u8]) -> Result<(i32, i32), XdrError> {
        let mut r = Reader::new(body);
        Ok((r.i32()?, r.i32()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_number_from_one_and_the_ones_the_rules_name() {
        assert_eq!(PROCEDURES.len(), 443);
        assert_eq!(procedure_name(0), None);
        assert_eq!(procedure_name(444), None);
        assert_eq!(procedure_name(u32::MAX), None);
        let named = [
            (proc::CONNECT_OPEN, "CONNECT_OPEN"),
            (proc::CONNECT_CLOSE, "CONNECT_CLOSE"),
            (proc::DOMAIN_CREATE, "DOMAIN_CREATE"),
            (proc::DOMAIN_DESTROY, "DOMAIN_DESTROY"),
            (proc::DOMAIN_GET_XML_DESC, "DOMAIN_GET_XML_DESC"),
            (
                proc::CONNECT_LIST_DEFINED_DOMAINS,
                "CONNECT_LIST_DEFINED_DOMAINS",
            ),
            (proc::DOMAIN_LOOKUP_BY_ID, "DOMAIN_LOOKUP_BY_ID"),
            (proc::DOMAIN_LOOKUP_BY_NAME, "DOMAIN_LOOKUP_BY_NAME"),
            (proc::DOMAIN_LOOKUP_BY_UUID, "DOMAIN_LOOKUP_BY_UUID"),
            (
                proc::CONNECT_NUM_OF_DEFINED_DOMAINS,
                "CONNECT_NUM_OF_DEFINED_DOMAINS",
            ),
            (proc::DOMAIN_REBOOT, "DOMAIN_REBOOT"),
            (proc::DOMAIN_RESUME, "DOMAIN_RESUME"),
            (proc::DOMAIN_SHUTDOWN, "DOMAIN_SHUTDOWN"),
            (proc::DOMAIN_SUSPEND, "DOMAIN_SUSPEND"),
            (proc::CONNECT_LIST_DOMAINS, "CONNECT_LIST_DOMAINS"),
            (proc::CONNECT_NUM_OF_DOMAINS, "CONNECT_NUM_OF_DOMAINS"),
            (
                proc::CONNECT_DOMAIN_EVENT_REGISTER,
                "CONNECT_DOMAIN_EVENT_REGISTER",
            ),
            (
                proc::CONNECT_DOMAIN_EVENT_DEREGISTER,
                "CONNECT_DOMAIN_EVENT_DEREGISTER",
            ),
            (
                proc::CONNECT_DOMAIN_EVENT_REGISTER_ANY,
                "CONNECT_DOMAIN_EVENT_REGISTER_ANY",
            ),
            (
                proc::CONNECT_DOMAIN_EVENT_DEREGISTER_ANY,
                "CONNECT_DOMAIN_EVENT_DEREGISTER_ANY",
            ),
            (proc::DOMAIN_CREATE_WITH_FLAGS, "DOMAIN_CREATE_WITH_FLAGS"),
            (proc::DOMAIN_OPEN_CONSOLE, "DOMAIN_OPEN_CONSOLE"),
            (proc::DOMAIN_SCREENSHOT, "DOMAIN_SCREENSHOT"),
            (proc::DOMAIN_SEND_KEY, "DOMAIN_SEND_KEY"),
            (proc::DOMAIN_DESTROY_FLAGS, "DOMAIN_DESTROY_FLAGS"),
            (proc::DOMAIN_RESET, "DOMAIN_RESET"),
            (proc::DOMAIN_SHUTDOWN_FLAGS, "DOMAIN_SHUTDOWN_FLAGS"),
            (proc::CONNECT_LIST_ALL_DOMAINS, "CONNECT_LIST_ALL_DOMAINS"),
            (
                proc::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
                "CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY",
            ),
            (
                proc::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
                "CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY",
            ),
            (
                proc::CONNECT_GET_DOMAIN_CAPABILITIES,
                "CONNECT_GET_DOMAIN_CAPABILITIES",
            ),
            (
                proc::CONNECT_GET_ALL_DOMAIN_STATS,
                "CONNECT_GET_ALL_DOMAIN_STATS",
            ),
            (
                proc::CONNECT_EVENT_CONNECTION_CLOSED,
                "CONNECT_EVENT_CONNECTION_CLOSED",
            ),
        ];
        for (number, name) in named {
            assert_eq!(procedure_name(number), Some(name), "{number}");
        }
    }

    #[test]
    fn a_domain_round_trips_and_its_uuid_prints_as_libvirt_does() {
        let domain = Domain {
            name: "web1".into(),
            uuid: Uuid([
                0x6d, 0xa2, 0x3b, 0x0c, 0x01, 0x02, 0x4a, 0xbc, 0x8d, 0xef, 0x00, 0x11, 0x22, 0x33,
                0x44, 0x55,
            ]),
            id: -1,
        };
        let mut w = Writer::new();
        domain.write(&mut w);
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), 8 + 16 + 4);
        let mut r = Reader::new(&bytes);
        assert_eq!(Domain::read(&mut r), Ok(domain.clone()));
        assert_eq!(
            domain.uuid.to_string(),
            "6da23b0c-0102-4abc-8def-001122334455"
        );
    }

    #[test]
    fn a_reported_error_has_libvirts_fields() {
        let error = RemoteError::reported(
            VIR_ERR_NO_DOMAIN,
            VIR_FROM_QEMU,
            "Domain not found: %s",
            Some("no domain with matching name 'x'"),
        );
        assert_eq!(
            error.message.as_deref(),
            Some("Domain not found: no domain with matching name 'x'")
        );
        let bytes = error.to_bytes();
        assert_eq!(RemoteError::read_code(&bytes), Ok((42, 10)));
        // A detail holding "%s" is not expanded again.
        let odd = RemoteError::reported(88, 55, "access denied: %s", Some("%s"));
        assert_eq!(odd.message.as_deref(), Some("access denied: %s"));
    }

    #[test]
    fn typed_params_of_every_kind_are_skipped_and_bad_tags_refused() {
        let mut w = Writer::new();
        w.string("a").u32(1).i32(5);
        w.string("b").u32(4).u64(7);
        w.string("c").u32(7).string("text");
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        for _ in 0..3 {
            skip_typed_param(&mut r).expect("a param");
        }
        assert_eq!(r.finish(), Ok(()));
        let mut w = Writer::new();
        w.string("d").u32(8).u32(0);
        let bytes = w.into_bytes();
        assert_eq!(
            skip_typed_param(&mut Reader::new(&bytes)),
            Err(XdrError::BadValue(8))
        );
    }
}
