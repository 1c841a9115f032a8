//! Where an allowed action acts: which hypervisor, the domain as virsh is to be given it,
//! and how much of `timeout_secs` is left.
//!
//! One hypervisor: a name virsh can read only as a name is acted on as it is; any other is
//! looked up first, so that virsh is given the UUID of exactly that name. Several: the
//! domain is looked up on each, read-only, all at once, and acted on where it is defined;
//! defined on more than one, where it is active if exactly one is. A domain is never started
//! while a hypervisor that may run it cannot be asked, nor when two hypervisors define it
//! and neither runs it (two QEMUs on one disk). The choice ([`choose`]) is pure, over the
//! lookups' answers; asking is the hypervisor interface's.

use std::time::{Duration, Instant};

use crate::action::Action;
use crate::config::{Config, HypervisorId};
use crate::error::{Doing, Error};
use crate::hypervisor::{Fault, Found, Libvirt, Target, ask_each};
use crate::lookup;

/// Where an action acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed<'d> {
    pub at: HypervisorId,
    pub target: Target<'d>,
    /// What is left of `timeout_secs` for the action itself.
    pub left: Duration,
}

/// One lookup's answer on one hypervisor, and how long it took.
pub type Answer = (HypervisorId, Result<Option<Found>, Fault>, Duration);

/// Places `action` on `domain`, among `hypervisors` (the grant's; the top-level `connect`
/// when empty).
pub fn place<'d>(
    libvirt: &dyn Libvirt,
    config: &Config,
    action: Action,
    domain: &'d str,
    hypervisors: &[HypervisorId],
) -> Result<Placed<'d>, Error> {
    let timeout = config.timeout;
    let ids = if hypervisors.is_empty() {
        &config.connect[..]
    } else {
        hypervisors
    };
    let doing = |at: Option<HypervisorId>| Doing {
        command: action.name(),
        domain: Some(domain.to_owned()),
        hypervisor: at.map(|id| config.hypervisor(id).label()),
        timeout_secs: timeout.as_secs(),
    };
    if let [id] = ids {
        if lookup::is_only_a_name(domain) {
            // virsh cannot read this name as an id or a UUID: it goes as it is, one run.
            let target = Target {
                name: domain,
                uuid: None,
            };
            return Ok(Placed {
                at: *id,
                target,
                left: timeout,
            });
        }
        let started = Instant::now();
        let found = libvirt
            .lookup(config.hypervisor(*id), domain, started + timeout)
            .map_err(|fault| Error::Libvirt {
                fault,
                doing: Box::new(doing(None)),
            })?;
        let Some(found) = found else {
            return Err(Error::Libvirt {
                fault: Fault::NotFound,
                doing: Box::new(doing(None)),
            });
        };
        return Ok(Placed {
            at: *id,
            target: Target {
                name: domain,
                uuid: found.uuid,
            },
            left: timeout.saturating_sub(started.elapsed()),
        });
    }
    let answers = ask_each(config, ids, timeout, |at, deadline| {
        libvirt.lookup(at, domain, deadline)
    });
    let (at, found, took) = choose(config, action, domain, answers)?;
    Ok(Placed {
        at,
        target: Target {
            name: domain,
            uuid: found.uuid,
        },
        left: timeout.saturating_sub(took),
    })
}

/// The hypervisor to act on, from every hypervisor's answer to a lookup of `domain`.
pub fn choose(
    config: &Config,
    action: Action,
    domain: &str,
    answers: Vec<Answer>,
) -> Result<(HypervisorId, Found, Duration), Error> {
    let mut found = Vec::new();
    let mut unanswered = Vec::new();
    for (id, answer, took) in answers {
        match answer {
            Ok(Some(here)) => found.push((id, here, took)),
            Ok(None) => {}
            Err(fault) => unanswered.push((id, fault)),
        }
    }
    let failure = |command: &'static str, (id, fault): (HypervisorId, Fault)| Error::Libvirt {
        fault,
        doing: Box::new(Doing {
            command,
            domain: Some(domain.to_owned()),
            hypervisor: Some(config.hypervisor(id).label()),
            timeout_secs: config.timeout.as_secs(),
        }),
    };
    if action == Action::Start && !unanswered.is_empty() {
        let why: Vec<Error> = unanswered
            .into_iter()
            .map(|u| failure("lookup", u))
            .collect();
        return Err(Error::StartUnsafe {
            domain: domain.to_owned(),
            why: Box::new(Error::combined(why).err().unwrap_or(Error::Denied)),
        });
    }
    match found.len() {
        0 if unanswered.is_empty() => Err(Error::Libvirt {
            fault: Fault::NotFound,
            doing: Box::new(Doing {
                command: action.name(),
                domain: Some(domain.to_owned()),
                hypervisor: None,
                timeout_secs: config.timeout.as_secs(),
            }),
        }),
        0 => {
            let why = unanswered.into_iter().map(|u| failure(action.name(), u));
            Err(Error::combined(why.collect())
                .err()
                .unwrap_or(Error::Denied))
        }
        1 => Ok(found.swap_remove(0)),
        _ => {
            let active: Vec<usize> = (0..found.len()).filter(|i| found[*i].1.active).collect();
            if let [only] = active[..] {
                return Ok(found.swap_remove(only));
            }
            let label = |id: HypervisorId| config.hypervisor(id).label();
            Err(Error::Ambiguous {
                domain: domain.to_owned(),
                action,
                defined: found.iter().map(|(id, _, _)| label(*id)).collect(),
                active: active.iter().map(|i| label(found[*i].0)).collect(),
            })
        }
    }
}
