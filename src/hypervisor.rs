//! What the gateway asks of libvirt, as a narrow interface: look a domain up, act on it,
//! attach to its console, list every domain's state, take a screenshot, and say where a
//! domain's graphical display is.
//!
//! The one real implementation is `virsh::Virsh`, which turns each question into a virsh
//! argument vector and reads virsh's words back into the answers below. The gateway's own
//! logic (which message and exit status for which failure, what `list` and completion may
//! show) is written against this trait alone, so its unit tests use a fake.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::action::Action;
use crate::config::{Config, Hypervisor, HypervisorId};
use crate::error::Revocation;
use crate::graphics::Protocol;

/// A libvirt domain UUID in the canonical form virsh prints: 8-4-4-4-12 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uuid(String);

impl Uuid {
    pub fn parse(text: &str) -> Option<Uuid> {
        let groups: Vec<&str> = text.split('-').collect();
        let shape_ok = groups.len() == 5
            && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups
                .iter()
                .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
        shape_ok.then(|| Uuid(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The domain a request acts on: its name, and its UUID when virsh must be given that
/// instead (a name virsh could read as an id or a UUID; see `lookup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub name: &'a str,
    pub uuid: Option<Uuid>,
}

/// A domain found on a hypervisor by its exact name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Set when the lookup went through a listing (the name alone is not safe to hand virsh).
    pub uuid: Option<Uuid>,
    /// Running, paused, ... — anything but shut off.
    pub active: bool,
}

/// What went wrong asking libvirt something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// virsh could not be started: why, naming the binary.
    CannotRun(String),
    /// libvirt could not be reached: virsh's words.
    Unreachable(String),
    /// It ran past its deadline and was stopped.
    TimedOut,
    /// The client hung up, or Ctrl-C, while it ran.
    Interrupted,
    /// No domain of that name is defined there.
    NotFound,
    /// Another session holds the console: virsh's words.
    ConsoleBusy(String),
    /// An attachment was ended because the config no longer allows it: why.
    Revoked(Revocation),
    /// virsh ran and failed: its words (safe for a terminal, the domain named as the user
    /// knows it) and, for when it said nothing, its exit status.
    Failed { words: String, status: String },
}

/// Asked, while an attachment lasts, whether it may go on: the config is read again.
pub trait Watch: Sync {
    /// `Err(why)` when the attachment must end now.
    fn still_allowed(&self) -> Result<(), Revocation>;
}

/// How often an attachment's [`Watch`] is asked (the contract says at least every 10 s).
pub const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// libvirt, as the gateway sees it. Every read is read-only; every call is bounded by its
/// deadline except the console, which lasts as long as the user stays.
pub trait Libvirt: Sync {
    /// Looks up the domain named exactly `name`. `None` when it is not defined there.
    fn lookup(
        &self,
        at: &Hypervisor,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<Found>, Fault>;

    /// Carries out `action` (not `console`) and returns what virsh printed, safe for a
    /// terminal, the domain named as the user knows it.
    fn act(
        &self,
        at: &Hypervisor,
        action: Action,
        target: &Target<'_>,
        deadline: Instant,
    ) -> Result<String, Fault>;

    /// Attaches the user's terminal to the domain's serial console until they leave, or
    /// until `watch` says the config no longer allows it.
    fn console(&self, at: &Hypervisor, target: &Target<'_>, watch: &dyn Watch)
    -> Result<(), Fault>;

    /// Every domain defined there, with its state as `virsh domstate` words it.
    fn states(
        &self,
        at: &Hypervisor,
        deadline: Instant,
    ) -> Result<Vec<(String, &'static str)>, Fault>;

    /// Takes a picture of the domain's screen and writes the image to `out`; how many bytes.
    fn screenshot(
        &self,
        at: &Hypervisor,
        target: &Target<'_>,
        deadline: Instant,
        out: &mut dyn Write,
    ) -> Result<u64, Fault>;

    /// Where the domain's graphical display of `protocol` is (its first one when `None`),
    /// as libvirt says it (read-only: never with a password), for `graphics::display` to
    /// read.
    fn display(
        &self,
        at: &Hypervisor,
        target: &Target<'_>,
        deadline: Instant,
        protocol: Option<Protocol>,
    ) -> Result<String, Fault>;
}

/// Runs `ask` for each of `ids` at once, each bounded by `timeout` from now on its own;
/// returns each answer with how long that hypervisor took to give it (not how long the
/// slowest took: a hypervisor that answered at once has its time left, whoever hung).
pub fn ask_each<T: Send>(
    config: &Config,
    ids: &[HypervisorId],
    timeout: Duration,
    ask: impl Fn(&Hypervisor, Instant) -> Result<T, Fault> + Sync,
) -> Vec<(HypervisorId, Result<T, Fault>, Duration)> {
    let started = Instant::now();
    let deadline = started + timeout;
    std::thread::scope(|scope| {
        let asking: Vec<_> = ids
            .iter()
            .map(|id| {
                let ask = &ask;
                let at = config.hypervisor(*id);
                let asked = scope.spawn(move || (ask(at, deadline), started.elapsed()));
                (*id, asked)
            })
            .collect();
        asking
            .into_iter()
            .map(|(id, asked)| {
                let (answer, took) = asked.join().unwrap_or_else(|_| {
                    let failed = Fault::Failed {
                        words: String::new(),
                        status: "the lookup failed".into(),
                    };
                    (Err(failed), started.elapsed())
                });
                (id, answer, took)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";

    #[test]
    fn uuids_parse_only_in_canonical_shape() {
        assert!(Uuid::parse(UUID).is_some());
        assert_eq!(
            Uuid::parse("6695EB01-F6A4-8304-79AA-97F2502E193F").map(|u| u.0),
            Some(UUID.to_owned())
        );
        for bad in [
            "",
            "2",
            "6695eb01f6a4830479aa97f2502e193f",
            "6695eb01-f6a4-8304-79aa-97f2502e193",
            "6695eb01-f6a4-8304-79aa-97f2502e193fa",
            "6695eb01-f6a4-8304-79aa-97f2502e193g",
            "6695eb01-f6a4-8304-79aa--97f2502e193f",
            "+695eb01-f6a4-8304-79aa-97f2502e193f",
            " 695eb01-f6a4-8304-79aa-97f2502e193f",
        ] {
            assert!(Uuid::parse(bad).is_none(), "{bad}");
        }
    }
}
