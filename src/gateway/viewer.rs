//! A viewer's tunnel to a graphical console: the fixed ssh command virt-manager and
//! virt-viewer send to reach a display listening on the host (`tunnel::Tunnel::Viewer`).
//!
//! It is relayed as `display` relays, to the endpoint libvirt names, only when the endpoint
//! the viewer asked for is the graphics endpoint (VNC or SPICE) of a running domain this key
//! may `display`, on a hypervisor on this host; which domain that is comes from the
//! hypervisor's own answers, read now. Anything else — another endpoint, a domain not
//! granted, a display that does not answer — is one refusal, 77 with the same words,
//! audited, nothing connected.

use std::time::Instant;

use crate::action::{Action, ActionSet};
use crate::error::{Error, Status};
use crate::graphics::{self, Ending, Protocol};
use crate::hypervisor::ask_each;
use crate::placement::{self, Placed};
use crate::policy::{self, Subject};
use crate::tunnel::Target;

use super::{Gateway, Reply};

/// A display the viewer named: whose it is, where, and what libvirt said of it.
struct Named<'d> {
    domain: &'d str,
    placed: Placed<'d>,
    display: graphics::Display,
}

impl Gateway<'_> {
    /// Relays the display `asked` names, if this key may; the exit status.
    pub fn tunnel(&self, asked: &Target) -> Status {
        if let Err(refused) = self.reload() {
            self.effects.user.report(&refused);
            self.record_config_refused();
            return Status::Config;
        }
        let config = self.config();
        let subject = self.subject(&config);
        let asked_text = match asked {
            Target::Tcp { host, port } => format!("{host}:{port}"),
            Target::Unix(path) => path.to_string_lossy().into_owned(),
        };
        let channel = self.effects.user.channel();
        let domains = self.displayable(&subject);
        let named = self.named(&subject, &domains, asked);
        let (domain, reply) = match (named, channel.fits(Action::Display)) {
            (Some(named), Ok(())) => (Some(named.domain), self.relay_named(&named)),
            (Some(named), Err(unfit)) => (
                Some(named.domain),
                Reply::failed(Error::Unfit {
                    action: Action::Display,
                    domain: named.domain.to_owned(),
                    needs: unfit.needs,
                    at_prompt: unfit.at_prompt,
                }),
            ),
            (None, _) => (None, Reply::failed(Error::Denied)),
        };
        if let Err(error) = &reply.result {
            self.effects.user.report(error);
        }
        self.record_tunnel(domain, &asked_text, &reply);
        reply.status()
    }

    /// The running domains this key may `display`, on the hypervisors on this host.
    fn displayable<'s>(&self, subject: &Subject<'s>) -> Vec<(String, crate::config::HypervisorId)> {
        let config = subject.config();
        let local: Vec<_> = subject
            .hypervisors()
            .into_iter()
            .filter(|id| policy::relays_display_from(config.hypervisor(*id)))
            .collect();
        let libvirt = self.effects.libvirt;
        let only: ActionSet = [Action::Display].into_iter().collect();
        let answers = ask_each(config, &local, config.timeout, |at, deadline| {
            libvirt.states(at, deadline)
        });
        let mut domains = Vec::new();
        for (id, answer, _) in answers {
            let Ok(states) = answer else { continue };
            domains.extend(
                states
                    .into_iter()
                    .filter(|(name, state)| {
                        *state != "shut off" && subject.may_use_on(name, id, only)
                    })
                    .map(|(name, _)| (name, id)),
            );
        }
        domains
    }

    /// Which of `domains` has the display `asked` names, by what libvirt says of each now.
    fn named<'d>(
        &self,
        subject: &Subject<'_>,
        domains: &'d [(String, crate::config::HypervisorId)],
        asked: &Target,
    ) -> Option<Named<'d>> {
        let config = subject.config();
        for (domain, id) in domains {
            let Ok(placed) = placement::place(
                self.effects.libvirt,
                config,
                Action::Display,
                domain,
                &[*id],
            ) else {
                continue;
            };
            let at = config.hypervisor(placed.at);
            let deadline = Instant::now() + placed.left;
            for protocol in [Protocol::Vnc, Protocol::Spice] {
                let said =
                    self.effects
                        .libvirt
                        .display(at, &placed.target, deadline, Some(protocol));
                let Ok(display) = said
                    .map_err(|_| ())
                    .and_then(|s| graphics::display(&s).map_err(|_| ()))
                else {
                    continue;
                };
                let names = match asked {
                    Target::Tcp { host, port } => graphics::names_tcp(&display, host, *port),
                    Target::Unix(path) => graphics::names_socket(&display, path),
                };
                if names {
                    let placed = placed.clone();
                    return Some(Named {
                        domain,
                        placed,
                        display,
                    });
                }
            }
        }
        None
    }

    /// Relays a named display as `display` would; one that does not answer is refused like
    /// any other endpoint.
    fn relay_named(&self, named: &Named<'_>) -> Reply {
        let domain = named.domain;
        let config = self.config();
        let at = config.hypervisor(named.placed.at);
        let watch = self.watch(Action::Display, domain, &at.uri);
        let deadline = Instant::now() + named.placed.left;
        let relayed = self.relay_display(domain, named.placed.at, &named.display, deadline, &watch);
        let (ending, traffic) = match relayed {
            Ok(relayed) => relayed,
            Err(_) => return Reply::failed(Error::Denied),
        };
        let result = Self::ended(domain, &ending);
        Reply {
            ended: Some(ending.word()),
            traffic: Some(traffic),
            ..Reply::acted(result.map(|()| String::new()), named.placed.at)
        }
    }

    /// What the way a relay ended means for the request.
    pub(super) fn ended(domain: &str, ending: &Ending) -> Result<(), Error> {
        match ending {
            Ending::ViewerClosed | Ending::DisplayClosed => Ok(()),
            Ending::HungUp => Err(Error::DisplayInterrupted),
            Ending::Revoked(why) => Err(Error::Revoked {
                why: why.clone(),
                attachment: Action::Display,
                domain: domain.to_owned(),
            }),
            Ending::WrongDisplay(name) => Err(Error::WrongDisplay {
                domain: domain.to_owned(),
                named: name.clone(),
            }),
        }
    }
}
