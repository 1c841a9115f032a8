//! What Tab may offer at the prompt. Completion reads the config again, as a request would,
//! so that it offers only what the key may use now: never a command outside its grants,
//! never a domain it may not run that command on. The listing it takes for domain names is
//! audited (rate-limited like any routine record) and bounded in time.

use std::time::Duration;

use crate::action::{Action, ActionSet};
use crate::hypervisor::ask_each;
use crate::policy::Subject;
use crate::system::prompt::Completions;

use super::Gateway;

/// How long Tab may wait for the listings it completes from: a Tab that waits a minute for
/// a stuck libvirt is worse than no completion.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(5);

impl Completions for Gateway<'_> {
    fn commands(&self) -> Vec<&'static str> {
        if self.reload().is_err() {
            return Vec::new();
        }
        let config = self.config();
        let subject = self.subject(&config);
        let channel = self.effects.user.channel();
        // What this channel cannot carry (display, screenshot at a terminal) is not offered.
        let mut words: Vec<&'static str> = subject
            .usable_actions()
            .iter()
            .filter(|action| channel.fits(*action).is_ok())
            .map(Action::name)
            .collect();
        if subject.is_known() {
            words.extend(["list", "help"]);
        }
        words.extend(["exit", "quit"]);
        words
    }

    fn domains(&self, action: Action) -> Vec<String> {
        if self.reload().is_err() || self.effects.user.hung_up() {
            return Vec::new();
        }
        let config = self.config();
        let subject = self.subject(&config);
        if !subject.usable_actions().contains(action) {
            return Vec::new();
        }
        let names = self.completion_names(&subject, action);
        self.record_completion_listing(action.name());
        names
    }

    fn idle(&self) -> Option<Duration> {
        self.config().idle_timeout
    }
}

impl Gateway<'_> {
    /// The existing domains `subject` may run `action` on, sorted.
    fn completion_names(&self, subject: &Subject<'_>, action: Action) -> Vec<String> {
        let only: ActionSet = [action].into_iter().collect();
        let config = subject.config();
        let timeout = config.timeout.min(COMPLETION_TIMEOUT);
        let libvirt = self.effects.libvirt;
        let answers = ask_each(config, &subject.hypervisors(), timeout, |at, deadline| {
            libvirt.states(at, deadline)
        });
        let mut names: Vec<String> = Vec::new();
        for (id, answer, _) in answers {
            let Ok(states) = answer else { continue };
            names.extend(
                states
                    .into_iter()
                    .map(|(name, _)| name)
                    .filter(|name| subject.may_use_on(name, id, only)),
            );
        }
        names.sort();
        names.dedup();
        names
    }
}
