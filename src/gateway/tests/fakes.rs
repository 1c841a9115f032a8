//! Fakes of everything the gateway reaches: libvirt, the config file, syslog, the user's
//! channel and the clock, each recording what it was asked.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::action::Action;
use crate::audit::{AuditSink, Severity};
use crate::config::{Config, ConfigError, Hypervisor};
use crate::error::Error;
use crate::gateway::{Clock, ConfigSource, Effects, Gateway, User, Who};
use crate::graphics::{Ending, Endpoint, Protocol, Traffic};
use crate::hypervisor::{Fault, Found, Libvirt, Target, Uuid, Watch};
use crate::policy::Channel;
use crate::rfb::Handshake;

/// A fake libvirt: domains per URI, faults per URI, and every call it was asked.
#[derive(Default)]
pub struct Fake {
    pub domains: HashMap<String, Vec<(String, &'static str)>>,
    pub faults: HashMap<String, Fault>,
    /// The answer to every `act`, `console` and `display`, if not the default success.
    pub act_fault: Option<Fault>,
    /// What `display` answers when nothing in `displays` does.
    pub display_at: String,
    /// What `display` answers for a domain and a protocol (`""` for the first display).
    pub displays: HashMap<(String, &'static str), String>,
    calls: Mutex<Vec<String>>,
}

impl Fake {
    pub fn with(uri: &str, domains: &[(&str, &'static str)]) -> Fake {
        Fake::default().add(uri, domains)
    }

    pub fn add(mut self, uri: &str, domains: &[(&str, &'static str)]) -> Fake {
        self.domains.insert(
            uri.into(),
            domains.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect(),
        );
        self
    }

    fn uuid_of(name: &str) -> Uuid {
        let sum: u32 = name.bytes().map(u32::from).sum();
        Uuid::parse(&format!("00000000-0000-0000-0000-{sum:012x}"))
            .unwrap_or_else(|| unreachable!("a well-formed UUID"))
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn call(&self, what: String) {
        self.calls.lock().unwrap().push(what);
    }

    /// A target by name must exist, as virsh would find out; one by UUID was found.
    fn exists(&self, at: &Hypervisor, target: &Target<'_>) -> Result<(), Fault> {
        let known = self
            .domains
            .get(&at.uri)
            .is_some_and(|d| d.iter().any(|(n, _)| n == target.name));
        if target.uuid.is_none() && !known {
            return Err(Fault::NotFound);
        }
        Ok(())
    }

    fn fault(&self, uri: &str) -> Result<(), Fault> {
        match self.faults.get(uri) {
            Some(fault) => Err(fault.clone()),
            None => Ok(()),
        }
    }

    fn acting(&self, at: &Hypervisor, target: &Target<'_>) -> Result<(), Fault> {
        self.fault(&at.uri)?;
        if let Some(fault) = &self.act_fault {
            return Err(fault.clone());
        }
        self.exists(at, target)
    }
}

impl Libvirt for Fake {
    fn lookup(&self, at: &Hypervisor, name: &str, _: Instant) -> Result<Option<Found>, Fault> {
        self.call(format!("lookup {} {name}", at.uri));
        self.fault(&at.uri)?;
        Ok(self
            .domains
            .get(&at.uri)
            .and_then(|d| d.iter().find(|(n, _)| n == name))
            .map(|(n, state)| Found {
                uuid: Some(Fake::uuid_of(n)),
                active: *state != "shut off",
            }))
    }

    fn act(
        &self,
        at: &Hypervisor,
        action: Action,
        target: &Target<'_>,
        _: Instant,
    ) -> Result<String, Fault> {
        self.call(format!("{} {} {}", action.name(), at.uri, target.name));
        self.acting(at, target)?;
        Ok(format!("did {} on {}", action.name(), target.name))
    }

    fn console(
        &self,
        at: &Hypervisor,
        target: &Target<'_>,
        watch: &dyn Watch,
    ) -> Result<(), Fault> {
        self.call(format!("console {} {}", at.uri, target.name));
        self.acting(at, target)?;
        // The console lasts until its watch is asked once.
        watch.still_allowed().map_err(Fault::Revoked)
    }

    fn states(&self, at: &Hypervisor, _: Instant) -> Result<Vec<(String, &'static str)>, Fault> {
        self.call(format!("states {}", at.uri));
        self.fault(&at.uri)?;
        Ok(self.domains.get(&at.uri).cloned().unwrap_or_default())
    }

    fn screenshot(
        &self,
        at: &Hypervisor,
        target: &Target<'_>,
        _: Instant,
        out: &mut dyn Write,
    ) -> Result<u64, Fault> {
        self.call(format!("screenshot {} {}", at.uri, target.name));
        self.fault(&at.uri)?;
        self.exists(at, target)?;
        let _ = out.write_all(b"PNG");
        Ok(3)
    }

    fn display(
        &self,
        at: &Hypervisor,
        target: &Target<'_>,
        _: Instant,
        protocol: Option<Protocol>,
    ) -> Result<String, Fault> {
        let kind = protocol.map_or("", Protocol::name);
        self.call(format!("display{kind} {} {}", at.uri, target.name));
        if let Some(answer) = self.displays.get(&(target.name.to_owned(), kind)) {
            return Ok(answer.clone());
        }
        self.acting(at, target)?;
        Ok(self.display_at.clone())
    }
}

/// A config file whose text the test changes between requests.
pub struct FakeConfig(pub Mutex<String>);

impl FakeConfig {
    pub fn new(text: &str) -> FakeConfig {
        FakeConfig(Mutex::new(text.to_owned()))
    }

    pub fn set(&self, text: &str) {
        *self.0.lock().unwrap() = text.to_owned();
    }
}

impl ConfigSource for FakeConfig {
    fn load(&self) -> Result<Config, ConfigError> {
        crate::config::parse(&self.0.lock().unwrap(), Path::new("t.json"))
    }
}

/// A syslog that keeps every message.
#[derive(Default)]
pub struct FakeAudit(pub Mutex<Vec<String>>);

impl FakeAudit {
    pub fn records(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl AuditSink for FakeAudit {
    fn send(&self, _: Severity, message: &str, _: Duration) -> bool {
        self.0.lock().unwrap().push(message.to_owned());
        true
    }
}

/// The user's channel: what it is, what was shown on it, how a relay ends.
pub struct FakeUser {
    pub channel: Channel,
    pub said: Mutex<Vec<String>>,
    pub reported: Mutex<Vec<String>>,
    pub output: Mutex<Vec<u8>>,
    /// How a relay ends; `None`: the connection is refused.
    pub relay_ends: Option<Ending>,
    pub relayed_to: Mutex<Vec<String>>,
    /// Whether the last relay read the VNC handshake.
    pub checked: Mutex<Option<bool>>,
}

impl FakeUser {
    pub fn new(channel: Channel) -> FakeUser {
        FakeUser {
            channel,
            said: Mutex::default(),
            reported: Mutex::default(),
            output: Mutex::default(),
            relay_ends: Some(Ending::ViewerClosed),
            relayed_to: Mutex::default(),
            checked: Mutex::default(),
        }
    }
}

impl User for FakeUser {
    fn channel(&self) -> Channel {
        self.channel
    }

    fn say(&self, text: &str) {
        self.said.lock().unwrap().push(text.to_owned());
    }

    fn report(&self, error: &Error) {
        self.reported.lock().unwrap().push(error.to_string());
    }

    fn hung_up(&self) -> bool {
        false
    }

    fn output(&self) -> Box<dyn Write + '_> {
        Box::new(Output(&self.output))
    }

    fn relay(
        &self,
        endpoint: &Endpoint,
        _: Instant,
        watch: &dyn Watch,
        handshake: Option<Handshake>,
        started: &mut dyn FnMut(),
    ) -> io::Result<(Ending, Traffic)> {
        *self.checked.lock().unwrap() = Some(handshake.is_some());
        self.relayed_to.lock().unwrap().push(endpoint.to_string());
        let Some(ending) = self.relay_ends.clone() else {
            return Err(io::ErrorKind::ConnectionRefused.into());
        };
        started();
        let ending = match watch.still_allowed() {
            Ok(()) => ending,
            Err(why) => Ending::Revoked(why),
        };
        let traffic = Traffic {
            to_display: 12,
            to_viewer: 34,
            lasted: Duration::from_millis(56),
        };
        Ok((ending, traffic))
    }
}

struct Output<'o>(&'o Mutex<Vec<u8>>);

impl Write for Output<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A clock that says what the test says.
pub struct FakeClock(pub i64);

impl Clock for FakeClock {
    fn now(&self) -> i64 {
        self.0
    }
}

/// Everything a test's gateway reaches.
pub struct World {
    pub libvirt: Fake,
    pub config: FakeConfig,
    pub audit: FakeAudit,
    pub user: FakeUser,
    pub clock: FakeClock,
}

impl World {
    pub fn new(libvirt: Fake, config: &str, channel: Channel) -> World {
        World {
            libvirt,
            config: FakeConfig::new(config),
            audit: FakeAudit::default(),
            user: FakeUser::new(channel),
            clock: FakeClock(1_800_000_000),
        }
    }

    /// A gateway for `key` on this world; `fresh` as for one request read just now.
    pub fn gateway(&self, key: &str, fresh: bool) -> Gateway<'_> {
        let effects = Effects {
            libvirt: &self.libvirt,
            config: &self.config,
            audit: &self.audit,
            user: &self.user,
            clock: &self.clock,
        };
        let config = self.config.load().unwrap_or_else(|e| panic!("{e}"));
        let who = Who {
            key: key.into(),
            client: Some("192.0.2.7 port 51234".into()),
            ..Who::default()
        };
        Gateway::new(who, effects, config, fresh)
    }

    /// What was shown on stdout and stderr since the last look, and forgets it.
    pub fn shown(&self) -> (String, String) {
        let said = std::mem::take(&mut *self.user.said.lock().unwrap()).concat();
        let reported = std::mem::take(&mut *self.user.reported.lock().unwrap()).join("\n");
        (said, reported)
    }
}
