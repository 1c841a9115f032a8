//! The narrow interfaces the gateway acts through, besides libvirt itself
//! (`hypervisor::Libvirt`) and the audit sink (`audit::AuditSink`): where the config comes
//! from, the user's end of the SSH channel, and the clock. Each has one real implementation
//! in `system` and a fake in the gateway's tests, so that `Gateway::handle` — reload,
//! revocation, which message and status for which failure, the audit record, `display` —
//! is tested without a rig.

use std::io::{self, Write};
use std::time::Instant;

use crate::audit::AuditSink;
use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::graphics::{Ending, Endpoint, Traffic};
use crate::hypervisor::{Libvirt, Watch};
use crate::policy::Channel;
use crate::rfb::Handshake;

/// Where the config comes from: read again, whole, each time it is asked for.
pub trait ConfigSource: Sync {
    fn load(&self) -> Result<Config, ConfigError>;
}

/// The user's end of the SSH channel.
pub trait User {
    /// What the channel is: terminals or not, one request or a session.
    fn channel(&self) -> Channel;
    /// Shows a request's text on stdout.
    fn say(&self, text: &str);
    /// Shows an error on stderr.
    fn report(&self, error: &Error);
    /// Whether the client hung up (or we were told to stop).
    fn hung_up(&self) -> bool;
    /// Where binary output (a screenshot) goes: stdout.
    fn output(&self) -> Box<dyn Write + '_>;
    /// Connects to a domain's display at `endpoint` by `deadline` and relays it over the
    /// channel until either side closes, the client hangs up, `watch` ends it, or the
    /// VNC `handshake` names another desktop; calls `started` once connected, before the
    /// first byte.
    fn relay(
        &self,
        endpoint: &Endpoint,
        deadline: Instant,
        watch: &dyn Watch,
        handshake: Option<Handshake>,
        started: &mut dyn FnMut(),
    ) -> io::Result<(Ending, Traffic)>;
}

/// What time it is, for grants that expire (Unix seconds).
pub trait Clock: Sync {
    fn now(&self) -> i64;
}

/// Everything the gateway reaches beyond itself.
#[derive(Clone, Copy)]
pub struct Effects<'e> {
    pub libvirt: &'e dyn Libvirt,
    pub config: &'e dyn ConfigSource,
    pub audit: &'e dyn AuditSink,
    pub user: &'e dyn User,
    pub clock: &'e dyn Clock,
}
