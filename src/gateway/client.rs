//! A user's own libvirt tools through the gateway: `virsh -c qemu+ssh://...`, virt-manager,
//! virt-viewer, python3-libvirt, Ansible. libvirt's ssh transport sends a fixed command
//! (`tunnel::Tunnel::Libvirt`); the gateway then relays libvirt's RPC protocol between the
//! SSH channel and the daemon of a hypervisor on this host that the key's grants name —
//! never a socket or URI the client sent — through `rpc::Filter`, which lets the key see and
//! touch only what its grants allow. The config is read again at least every
//! `rpc::relay::GRANTS_EVERY`: a domain no longer granted vanishes and its calls are denied;
//! a config that no longer loads ends the connection. Every call that acts or is denied is
//! one audit record.

use std::path::PathBuf;
use std::time::Instant;

use crate::action::{Action, ActionSet};
use crate::config::{Config, Hypervisor, HypervisorId};
use crate::error::{Error, Status};
use crate::policy::Subject;
use crate::rpc::relay::{Context, Ending, GRANTS_EVERY};
use crate::rpc::{Call, Filter, Grants};

use super::Gateway;

/// What the client's command asked for: the URI given to `virt-ssh-helper`, if any, and
/// the socket given to `nc -U`, if any. Neither is ever connected to; they only choose
/// among the hypervisors the key's grants name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    pub uri: Option<String>,
    pub socket: Option<PathBuf>,
}

impl Gateway<'_> {
    /// Serves a standard libvirt client until it or the daemon closes; the exit status.
    pub fn libvirt_client(&self, asked: &Asked) -> Status {
        if let Err(refused) = self.reload() {
            self.effects.user.report(&refused);
            self.record_config_refused();
            return Status::Config;
        }
        let chosen = {
            let config = self.config();
            let subject = self.subject(&config);
            serve(&subject, asked).map(|id| config.hypervisor(id).clone())
        };
        let at = match chosen {
            Ok(at) => at,
            Err(error) => {
                self.effects.user.report(&error);
                self.record_client(None, &error);
                return error.status();
            }
        };
        let mut filter = Filter::new(&daemon_uri(&at.uri));
        let mut context = Served {
            gateway: self,
            uri: at.uri.clone(),
            grants: None,
            read: None,
        };
        let ending =
            self.effects
                .user
                .relay_libvirt(&daemon_socket(&at.uri), &mut filter, &mut context);
        let result = match ending {
            Ok(Ending::ClientClosed | Ending::DaemonClosed) => Ok(()),
            Ok(ending) => Err(Error::ClientEnded {
                hypervisor: at.label(),
                why: ending_words(&ending),
                status: ending_status(&ending),
            }),
            Err(error) => Err(Error::ClientEnded {
                hypervisor: at.label(),
                why: format!("cannot reach its daemon: {error}"),
                status: Status::Unavailable,
            }),
        };
        match result {
            Ok(()) => Status::Ok,
            Err(error) => {
                self.effects.user.report(&error);
                self.record_client(Some(&at.label()), &error);
                error.status()
            }
        }
    }
}

/// The hypervisor a client is served from: one on this host that the key's grants name,
/// chosen by the URI (or socket) the client asked for when there are several.
fn serve(subject: &Subject<'_>, asked: &Asked) -> Result<HypervisorId, Error> {
    let config = subject.config();
    let named = subject.hypervisors();
    let label = |id: &HypervisorId| config.hypervisor(*id).label();
    let local: Vec<HypervisorId> = named
        .iter()
        .copied()
        .filter(|id| config.hypervisor(*id).is_local())
        .collect();
    if !subject.is_known() {
        return Err(Error::Denied);
    }
    match local.as_slice() {
        [] => Err(Error::NoLocalHypervisor {
            named: named.iter().map(label).collect(),
        }),
        [only] => Ok(*only),
        several => {
            let chosen: Vec<HypervisorId> = several
                .iter()
                .copied()
                .filter(|id| means(config.hypervisor(*id), asked))
                .collect();
            match chosen.as_slice() {
                [one] => Ok(*one),
                _ => Err(Error::WhichHypervisor {
                    local: several.iter().map(label).collect(),
                }),
            }
        }
    }
}

/// Whether the client asked for `at`: the same driver and path (`qemu:///system`), or the
/// socket its URI names.
fn means(at: &Hypervisor, asked: &Asked) -> bool {
    let by_uri = asked
        .uri
        .as_deref()
        .is_some_and(|uri| daemon_uri(uri) == daemon_uri(&at.uri));
    let by_socket = asked.socket.as_deref().is_some_and(|socket| {
        query(&at.uri, "socket").is_some_and(|own| own == socket.to_string_lossy())
    });
    by_uri || by_socket
}

/// The URI the daemon is opened with: the driver and path of a hypervisor's URI, without
/// transport, host or parameters (`test+unix:///default?socket=...` is `test:///default`).
pub fn daemon_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let driver = scheme.split('+').next().unwrap_or(scheme);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    format!("{driver}://{path}")
}

/// The daemon's socket for a hypervisor on this host: the URI's `socket=`, the session
/// daemon's of the account for `/session`, the system daemon's otherwise.
pub fn daemon_socket(uri: &str) -> PathBuf {
    if let Some(socket) = query(uri, "socket") {
        return PathBuf::from(socket);
    }
    if daemon_uri(uri).ends_with("/session") {
        let uid = nix::unistd::geteuid().as_raw();
        return PathBuf::from(format!("/run/user/{uid}/libvirt/libvirt-sock"));
    }
    PathBuf::from("/run/libvirt/libvirt-sock")
}

/// A parameter of a URI's query, as written.
fn query<'u>(uri: &'u str, name: &str) -> Option<&'u str> {
    let (_, query) = uri.split_once('?')?;
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

/// What the relay needs of the gateway while a client is served: the grants of now for the
/// hypervisor served, and the audit.
struct Served<'g, 'e> {
    gateway: &'g Gateway<'e>,
    uri: String,
    grants: Option<KeyGrants>,
    /// When the config was last read for the grants.
    read: Option<Instant>,
}

impl Context for Served<'_, '_> {
    fn grants(&mut self) -> Result<&dyn Grants, String> {
        let stale = self.read.is_none_or(|read| read.elapsed() >= GRANTS_EVERY);
        if stale || self.grants.is_none() {
            let config = self
                .gateway
                .effects
                .config
                .load()
                .map_err(|refused| format!("the config can no longer be read ({refused})"))?;
            self.grants = Some(KeyGrants::new(config, self.gateway, &self.uri));
            self.read = Some(Instant::now());
        }
        match &self.grants {
            Some(grants) => Ok(grants),
            None => Err("no grants".into()),
        }
    }

    fn audit(&mut self, call: &Call) {
        self.gateway.record_call(call);
    }

    fn hung_up(&self) -> bool {
        self.gateway.effects.user.hung_up()
    }
}

/// A key's grants on the hypervisor served, as of one reading of the config.
struct KeyGrants {
    config: Config,
    key: String,
    bound: Option<String>,
    now: i64,
    /// The hypervisor served, in this reading's numbering; `None` when the config no longer
    /// names it (then nothing is granted).
    at: Option<HypervisorId>,
}

impl KeyGrants {
    fn new(config: Config, gateway: &Gateway<'_>, uri: &str) -> KeyGrants {
        let at = config.hypervisor_id(uri);
        KeyGrants {
            config,
            key: gateway.who.key.clone(),
            bound: gateway.who.bound.clone(),
            now: gateway.effects.clock.now(),
            at,
        }
    }

    fn allows(&self, name: &str, actions: ActionSet) -> bool {
        let Some(at) = self.at else { return false };
        let subject = Subject::at(&self.config, &self.key, self.bound.as_deref(), self.now);
        subject.may_use_on(name, at, actions)
    }
}

impl Grants for KeyGrants {
    fn may_see(&self, name: &str) -> bool {
        self.allows(name, ActionSet::ALL)
    }

    fn may(&self, action: Action, name: &str) -> bool {
        self.allows(name, [action].into_iter().collect())
    }
}

/// Why a served connection ended, for the user.
fn ending_words(ending: &Ending) -> String {
    match ending {
        Ending::ClientClosed | Ending::DaemonClosed => "closed".into(),
        Ending::Refused(end) => {
            format!("the client sent what libvirt's protocol does not allow: {end}")
        }
        Ending::Revoked(why) => why.clone(),
        Ending::Failed(why) => why.clone(),
        Ending::HungUp => "interrupted".into(),
    }
}

fn ending_status(ending: &Ending) -> Status {
    match ending {
        Ending::ClientClosed | Ending::DaemonClosed => Status::Ok,
        Ending::Refused(_) => Status::Usage,
        Ending::Revoked(_) => Status::Config,
        Ending::Failed(_) => Status::Unavailable,
        Ending::HungUp => Status::Interrupted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hypervisors_uri_names_its_daemon_and_its_socket() {
        let rows = [
            (
                "qemu:///system",
                "qemu:///system",
                "/run/libvirt/libvirt-sock",
            ),
            (
                "qemu+unix:///system",
                "qemu:///system",
                "/run/libvirt/libvirt-sock",
            ),
            (
                "test+unix:///default?socket=/tmp/d/libvirt-sock",
                "test:///default",
                "/tmp/d/libvirt-sock",
            ),
            (
                "qemu:///system?socket=/run/libvirt/virtqemud-sock&x=1",
                "qemu:///system",
                "/run/libvirt/virtqemud-sock",
            ),
        ];
        for (uri, daemon, socket) in rows {
            assert_eq!(daemon_uri(uri), daemon, "{uri}");
            assert_eq!(daemon_socket(uri), PathBuf::from(socket), "{uri}");
        }
        assert!(daemon_socket("qemu:///session").ends_with("libvirt/libvirt-sock"));
        assert_eq!(
            daemon_uri("qemu+ssh://u@h:22/system?keyfile=/k"),
            "qemu:///system"
        );
    }

    #[test]
    fn the_client_chooses_among_local_hypervisors_by_uri_or_socket() {
        let text = r#"{
          "hypervisors": {
            "sys": "qemu:///system",
            "lab": "test+unix:///default?socket=/tmp/lab-sock",
            "far": "qemu+ssh://dromaius@hv9/system"
          },
          "keys": {
            "many": [{"domains": ["*"], "connect": ["sys", "lab", "far"]}],
            "one": [{"domains": ["*"], "connect": ["lab", "far"]}],
            "away": [{"domains": ["*"], "connect": "far"}]
          }
        }"#;
        let config = crate::config::parse(text, std::path::Path::new("t.json")).unwrap();
        let label = |result: Result<HypervisorId, Error>| {
            result
                .map(|id| config.hypervisor(id).label())
                .map_err(|e| e.to_string())
        };
        let ask = |key: &str, uri: Option<&str>, socket: Option<&str>| {
            let subject = Subject::new(&config, key, None);
            let asked = Asked {
                uri: uri.map(str::to_owned),
                socket: socket.map(PathBuf::from),
            };
            label(serve(&subject, &asked))
        };
        assert_eq!(ask("one", None, None), Ok("lab".into()));
        assert_eq!(ask("many", Some("qemu:///system"), None), Ok("sys".into()));
        assert_eq!(ask("many", Some("test:///default"), None), Ok("lab".into()));
        assert_eq!(ask("many", None, Some("/tmp/lab-sock")), Ok("lab".into()));
        let which = ask("many", None, Some("/run/libvirt/libvirt-sock")).unwrap_err();
        assert!(which.contains("sys, lab"), "{which}");
        let away = ask("away", Some("qemu:///system"), None).unwrap_err();
        assert!(away.contains("far"), "{away}");
        assert_eq!(ask("mallory", None, None), Err("permission denied".into()));
    }
}
