//! Carrying out what was judged: an allowed action where `placement` puts it, `list`,
//! `help`, and the refusals, each as a [`Reply`] (what to show, how it ended, where it
//! acted). Nothing runs for a refusal, nor for an action the channel cannot carry.

use std::time::Instant;

use crate::action::Action;
use crate::config::HypervisorId;
use crate::error::{Doing, Error, Status};
use crate::graphics::{self, Ending, Protocol, Traffic};
use crate::hypervisor::{Fault, ask_each};
use crate::placement::{self, Placed};
use crate::policy::{self, Allowed, Judgement, Subject};
use crate::render;
use crate::request::Verb;
use crate::rfb::Handshake;

use super::Gateway;
use super::watch::Attached;

/// What carrying out a request produced: text for stdout, how it ended, where it acted,
/// and for an attachment how it ended and what passed (for the audit).
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub shown: String,
    pub result: Result<(), Error>,
    pub acted_on: Option<HypervisorId>,
    pub ended: Option<&'static str>,
    pub traffic: Option<Traffic>,
}

impl Reply {
    fn done(shown: String) -> Reply {
        Reply {
            shown,
            result: Ok(()),
            acted_on: None,
            ended: None,
            traffic: None,
        }
    }

    pub(super) fn failed(error: Error) -> Reply {
        Reply {
            result: Err(error),
            ..Reply::done(String::new())
        }
    }

    /// The reply of an action that reached a hypervisor (or tried to).
    pub(super) fn acted(result: Result<String, Error>, acted_on: HypervisorId) -> Reply {
        let ended = match &result {
            Err(error) if error.is_revoked() => Some("revoked while attached"),
            _ => None,
        };
        let reply = match result {
            Ok(shown) => Reply::done(shown),
            Err(error) => Reply::failed(error),
        };
        Reply {
            acted_on: Some(acted_on),
            ended,
            ..reply
        }
    }

    /// The exit status the request ends with.
    pub fn status(&self) -> Status {
        match &self.result {
            Ok(()) => Status::Ok,
            Err(error) => error.status(),
        }
    }
}

impl Gateway<'_> {
    /// Carries out what was judged. Runs nothing for a refusal.
    pub(super) fn carry_out(&self, subject: &Subject<'_>, judgement: &Judgement<'_>) -> Reply {
        match judgement {
            Judgement::Invalid(error) => Reply::failed(Error::Usage(error.clone())),
            Judgement::Denied { .. } => Reply::failed(Error::Denied),
            Judgement::Session(Verb::Exit) => Reply::done(String::new()),
            Judgement::Session(Verb::Help) => Reply::done(render::help_text(subject)),
            Judgement::Session(_) => self.list(subject),
            Judgement::Allowed(allowed) => self.act(allowed),
        }
    }

    /// Carries out an allowed action where it is placed.
    fn act(&self, allowed: &Allowed<'_>) -> Reply {
        let Allowed { action, domain, .. } = allowed;
        if let Some(unfit) = allowed.unfit {
            return Reply::failed(Error::Unfit {
                action: *action,
                domain: domain.clone(),
                needs: unfit.needs,
                at_prompt: unfit.at_prompt,
            });
        }
        let libvirt = self.effects.libvirt;
        let config = self.config();
        let placed = match placement::place(libvirt, &config, *action, domain, allowed.hypervisors)
        {
            Ok(placed) => placed,
            Err(error) => return Reply::failed(error),
        };
        let at = config.hypervisor(placed.at);
        let watch = self.watch(*action, domain, &at.uri);
        let deadline = Instant::now() + placed.left;
        let failed = |fault| self.libvirt_error(fault, *action, domain, allowed, placed.at);
        let result = match action {
            Action::Console => libvirt
                .console(at, &placed.target, &watch)
                .map(|()| String::new()),
            Action::Display => return self.display(allowed, &placed, deadline, &watch),
            Action::Screenshot => libvirt
                .screenshot(
                    at,
                    &placed.target,
                    deadline,
                    &mut self.effects.user.output(),
                )
                .map(|_| String::new()),
            _ => libvirt.act(at, *action, &placed.target, deadline),
        };
        Reply::acted(result.map_err(failed), placed.at)
    }

    /// What a fault of libvirt means, for `action` on `domain` at `at` (named when the
    /// grant spans several hypervisors).
    fn libvirt_error(
        &self,
        fault: Fault,
        action: Action,
        domain: &str,
        allowed: &Allowed<'_>,
        at: HypervisorId,
    ) -> Error {
        let fleet = allowed.hypervisors.len() > 1;
        Error::Libvirt {
            fault,
            doing: Box::new(Doing {
                command: action.name(),
                domain: Some(domain.to_owned()),
                hypervisor: fleet.then(|| self.config().hypervisor(at).label()),
                timeout_secs: self.config().timeout.as_secs(),
            }),
        }
    }

    /// `display`: relays the domain's display over the channel until either side closes,
    /// the client hangs up, or revocation ends it. Only for a hypervisor on this host, and
    /// only to the endpoint libvirt names; its start is audited when connected, its end
    /// with the request.
    fn display(
        &self,
        allowed: &Allowed<'_>,
        placed: &Placed<'_>,
        deadline: Instant,
        watch: &Attached<'_>,
    ) -> Reply {
        let domain = &allowed.domain;
        let config = self.config();
        let at = config.hypervisor(placed.at);
        let failed = |error| Reply::acted(Err(error), placed.at);
        if !policy::relays_display_from(at) {
            return failed(Error::RemoteDisplay {
                domain: domain.clone(),
                hypervisor: at.label(),
            });
        }
        let said = match self
            .effects
            .libvirt
            .display(at, &placed.target, deadline, None)
        {
            Ok(said) => said,
            Err(fault) => {
                let error = self.libvirt_error(fault, Action::Display, domain, allowed, placed.at);
                return failed(error);
            }
        };
        let shown = match graphics::display(&said) {
            Ok(shown) => shown,
            Err(why) => {
                return failed(Error::NoDisplay {
                    domain: domain.clone(),
                    why,
                });
            }
        };
        let (ending, traffic) = match self.relay_display(domain, placed.at, &shown, deadline, watch)
        {
            Ok(relayed) => relayed,
            Err(error) => return failed(error),
        };
        let result = Self::ended(domain, &ending).map(|()| String::new());
        Reply {
            ended: Some(ending.word()),
            traffic: Some(traffic),
            ..Reply::acted(result, placed.at)
        }
    }

    /// Relays `shown`, the display libvirt named for `domain` on `at`: the start is
    /// recorded once connected; a VNC display must name that domain's desktop.
    pub(super) fn relay_display(
        &self,
        domain: &str,
        at: HypervisorId,
        shown: &graphics::Display,
        deadline: Instant,
        watch: &Attached<'_>,
    ) -> Result<(Ending, Traffic), Error> {
        let endpoint = shown.endpoint.to_string();
        let mut started = || self.record_display_start(domain, at, &endpoint);
        let handshake = (shown.protocol == Protocol::Vnc).then(|| Handshake::for_domain(domain));
        self.effects
            .user
            .relay(&shown.endpoint, deadline, watch, handshake, &mut started)
            .map_err(|error| Error::DisplayUnreachable {
                domain: domain.to_owned(),
                endpoint: endpoint.clone(),
                why: graphics::why_not(&error),
            })
    }

    /// `list`: every existing domain this key may act on, with its state, from one listing
    /// per hypervisor, all at once. A hypervisor that fails is named; the others are still
    /// listed. When the key's grants span more than one hypervisor, a third column says
    /// which each domain is on (a name defined on two is listed once for each).
    fn list(&self, subject: &Subject<'_>) -> Reply {
        let ids = subject.hypervisors();
        let fleet = ids.len() > 1;
        let libvirt = self.effects.libvirt;
        let config = subject.config();
        let answers = ask_each(config, &ids, config.timeout, |at, deadline| {
            libvirt.states(at, deadline)
        });
        let mut rows: Vec<(String, &'static str, String)> = Vec::new();
        let mut errors = Vec::new();
        for (id, answer, _) in answers {
            let at = config.hypervisor(id);
            match answer {
                Ok(states) => rows.extend(
                    states
                        .into_iter()
                        .filter(|(name, _)| subject.may_list(name, id))
                        .map(|(name, state)| {
                            (name, state, if fleet { at.label() } else { String::new() })
                        }),
                ),
                // Always named: a list that is short of one hypervisor must say which.
                Err(fault) => errors.push(Error::Libvirt {
                    fault,
                    doing: Box::new(Doing {
                        command: "list",
                        domain: None,
                        hypervisor: Some(at.label()),
                        timeout_secs: config.timeout.as_secs(),
                    }),
                }),
            }
        }
        rows.sort();
        Reply {
            result: Error::combined(errors),
            ..Reply::done(render::list_text(&rows))
        }
    }

    /// The watch of an attachment (`console`, `display`): the config is read again, and it
    /// may go on while the same decision would still allow it on the same hypervisor.
    pub(super) fn watch<'w>(
        &'w self,
        action: Action,
        domain: &'w str,
        uri: &'w str,
    ) -> Attached<'w> {
        Attached {
            source: self.effects.config,
            clock: self.effects.clock,
            key: &self.who.key,
            bound: self.who.bound.as_deref(),
            action,
            domain,
            uri,
        }
    }
}
