//! An attachment's watch: while a console or display lasts, the config is read again, and
//! the attachment may go on while the same decision would still allow that command on that
//! domain on that same hypervisor.

use crate::action::Action;
use crate::error::Revocation;
use crate::hypervisor::Watch;
use crate::policy::{Decision, Subject};

use super::effects::{Clock, ConfigSource};

/// What an attachment is, and where the config comes from.
pub(super) struct Attached<'w> {
    pub source: &'w dyn ConfigSource,
    pub clock: &'w dyn Clock,
    pub key: &'w str,
    pub bound: Option<&'w str>,
    pub action: Action,
    pub domain: &'w str,
    /// The URI of the hypervisor it is attached on.
    pub uri: &'w str,
}

impl Watch for Attached<'_> {
    fn still_allowed(&self) -> Result<(), Revocation> {
        let config = self.source.load().map_err(Revocation::ConfigGone)?;
        let subject = Subject::at(&config, self.key, self.bound, self.clock.now());
        match subject.decide(self.action, self.domain) {
            Decision::Allow { hypervisors, .. }
                if hypervisors
                    .iter()
                    .any(|id| config.hypervisor(*id).uri == self.uri) =>
            {
                Ok(())
            }
            _ => Err(Revocation::Revoked {
                action: self.action,
                domain: self.domain.to_owned(),
            }),
        }
    }
}
