//! The errors the filter writes itself, worded as libvirt does: access denied for a call
//! off the list or without its grant, and the daemon's driver's "Domain not found" for a
//! domain the key may not see, so that it cannot be told from a missing one. It also owns
//! how a client-sent name is echoed ([`bounded`]).

use crate::action::Action;

use super::judge::DomainArg;
use super::pending::LookupOf;
use super::{Call, Filter, Out};
use crate::rpc::remote::{self, RemoteError};
use crate::rpc::wire::{self, Header, Status, Type};

/// The longest client-sent name echoed in an error, in bytes.
const ECHO_MAX: usize = 1024;

/// How the daemon's driver words "no such domain" (the hypervisor's, as the URI names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// qemu (and the default): lookups say which name, UUID or id matched nothing.
    Qemu,
    /// The test driver: lookups say only "Domain not found".
    Test,
}

impl Driver {
    /// The driver a URI names: `test` for `test:///...` and `test+unix://...`.
    pub fn of_uri(uri: &str) -> Driver {
        let scheme = uri.split(':').next().unwrap_or("");
        let driver = scheme.split('+').next().unwrap_or("");
        if driver == "test" {
            Driver::Test
        } else {
            Driver::Qemu
        }
    }

    fn from(self) -> i32 {
        match self {
            Driver::Qemu => remote::VIR_FROM_QEMU,
            Driver::Test => remote::VIR_FROM_TEST,
        }
    }
}

impl Filter {
    /// Answers a call with libvirt's access-denied error, and audits it.
    pub(super) fn deny(
        &self,
        header: &Header,
        procedure: String,
        action: Option<Action>,
        domain: Option<String>,
        out: &mut Vec<Out>,
    ) {
        let error = RemoteError::reported(
            remote::VIR_ERR_ACCESS_DENIED,
            remote::VIR_FROM_ACCESS,
            "access denied: %s",
            Some("'dromaius' denied access"),
        );
        self.answer_error(header, &error, out);
        out.push(Out::Audit(Call {
            procedure,
            action,
            domain,
            allowed: false,
        }));
    }

    /// Answers the call of `header` with `error`, in the daemon's stead.
    pub(super) fn answer_error(&self, header: &Header, error: &RemoteError, out: &mut Vec<Out>) {
        let reply = Header {
            kind: Type::Reply,
            status: Status::Error,
            ..*header
        };
        out.push(Out::ToClient(wire::encode(&reply, &error.to_bytes())));
    }

    /// The error a lookup of a missing domain gets from the daemon's driver.
    pub(super) fn lookup_not_found(&self, of: &LookupOf) -> RemoteError {
        let detail = match (self.driver, of) {
            (Driver::Test, _) => None,
            (Driver::Qemu, LookupOf::Name(name)) => {
                Some(format!("no domain with matching name '{}'", bounded(name)))
            }
            (Driver::Qemu, LookupOf::Uuid(uuid)) => {
                Some(format!("no domain with matching uuid '{uuid}'"))
            }
            (Driver::Qemu, LookupOf::Id(id)) => Some(format!("no domain with matching id {id}")),
        };
        not_found(self.driver, detail.as_deref())
    }

    /// The error a call on a missing domain gets from the daemon's driver (both say which
    /// UUID, and the name the client sent with it).
    pub(super) fn object_not_found(&self, dom: &DomainArg) -> RemoteError {
        let detail = format!(
            "no domain with matching uuid '{}' ({})",
            dom.uuid,
            bounded(&dom.name)
        );
        not_found(self.driver, Some(&detail))
    }
}

/// libvirt's "Domain not found" error of the driver, with or without its detail.
pub(super) fn not_found(driver: Driver, detail: Option<&str>) -> RemoteError {
    let template = if detail.is_some() {
        "Domain not found: %s"
    } else {
        "Domain not found"
    };
    RemoteError::reported(remote::VIR_ERR_NO_DOMAIN, driver.from(), template, detail)
}

/// A client-sent name as echoed in an error: whole, unless absurdly long.
pub(super) fn bounded(name: &str) -> &str {
    if name.len() <= ECHO_MAX {
        return name;
    }
    let mut end = ECHO_MAX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}
