//! The promise every fuzz target checks after each decision: an `Allow` is backed by a
//! live grant of the key (or by the bound `AllowedHosts` domain, for the seven original
//! commands only) that matches both the command and the domain, it is the *first* such
//! grant, and its hypervisors are that grant's; a `Deny` means nothing could have allowed
//! it. Shared by the targets with `#[path]`.

use dromaius::action::{Action, ActionSet};
use dromaius::config::{Config, DomainPattern};
use dromaius::policy::{Decision, Subject};

/// Checks one decision against the config by a route independent of `Subject::decide`.
pub fn check_decision(
    config: &Config,
    key: &str,
    bound: Option<&str>,
    subject: &Subject<'_>,
    action: Action,
    domain: &str,
) {
    let decision = subject.decide(action, domain);
    let grants = config.keys.get(key).map(Vec::as_slice).unwrap_or_default();
    let first_match = grants.iter().position(|g| {
        !subject.has_expired(g)
            && g.commands.contains(action)
            && g.domains.iter().any(|p| p.matches(domain))
    });
    let bound_ok = bound.is_none_or(|b| b == domain);
    let host_allowed = bound.is_some_and(|b| config.allowed_hosts.iter().any(|h| h == b));
    // An AllowedHosts binding grants the seven original commands on the bound domain, and
    // nothing added since (an upgrade never widens an existing grant).
    let host_allows = bound_ok && host_allowed && ActionSet::DEFAULT.contains(action);
    match decision {
        Decision::Allow {
            hypervisors,
            grant: Some(index),
        } => {
            assert!(
                bound_ok,
                "allowed {domain:?} outside the bound domain {bound:?}"
            );
            assert!(
                !host_allows,
                "an AllowedHosts binding must decide by itself"
            );
            assert_eq!(Some(index), first_match, "not the first matching grant");
            let grant = &grants[index];
            assert!(grant.commands.contains(action));
            assert_eq!(hypervisors, config.hypervisors_of(grant));
            // An exact name matches only itself, byte for byte.
            if grant
                .domains
                .iter()
                .all(|p| matches!(p, DomainPattern::Exact(_)))
            {
                assert!(
                    grant
                        .domains
                        .iter()
                        .any(|p| matches!(p, DomainPattern::Exact(n) if n == domain)),
                    "{domain:?} allowed by a grant of exact names that does not hold it"
                );
            }
        }
        Decision::Allow {
            hypervisors,
            grant: None,
        } => {
            assert_eq!(bound, Some(domain), "AllowedHosts allow for another domain");
            assert!(host_allowed, "allowed a bound host not in AllowedHosts");
            assert!(
                ActionSet::DEFAULT.contains(action),
                "AllowedHosts allowed {action:?}, which is not one of the seven original commands"
            );
            assert_eq!(hypervisors, config.connect.as_slice());
        }
        Decision::Deny(_) => {
            assert!(
                !bound_ok || first_match.is_none(),
                "denied {action:?} {domain:?} that grant {first_match:?} allows"
            );
            assert!(
                !host_allows,
                "denied {action:?} on the bound AllowedHosts domain"
            );
        }
    }
}
