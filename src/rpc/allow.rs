//! The allowlist of the remote program, as a data table: procedure number → [`Rule`].
//! A procedure not in [`TABLE`] is denied — there is no default but that.
//!
//! Each row was chosen by reading its `@acl:` annotations in remote_protocol.x and what
//! the call does; the tests hold every row to its annotations (a read must be
//! `domain:read` and nothing more, an action must carry the acl of its command, ...), so
//! that a write cannot slip into a read class by a typo. How a rule is carried out (which
//! domain, which reply to rewrite) is `filter`'s business; the shape of domain events the
//! daemon sends is described here too, as data, in [`event_shape`].

use crate::action::Action;

use super::remote::proc;

/// What the filter does with a call of one procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The connection's own calls, which name no domain: forwarded as they are.
    Connection,
    /// connect open: its URI is replaced by the gateway's, only the read-only flag kept.
    Open,
    /// connect close: forwarded; nothing may follow it.
    Close,
    /// Domain capabilities: allowed only without an emulator path (annotated
    /// `connect:write` because a path makes the daemon probe that binary).
    DomainCapabilities,
    /// Listings and stats of all domains, answered for the visible ones only.
    List(List),
    /// A lookup, answered like a missing domain when the key may not see the result.
    Lookup(Lookup),
    /// Reading a visible domain. The domain is the first argument, or (for a snapshot or a
    /// checkpoint) the second field of the first argument.
    Read(Object),
    /// Reading a visible domain's XML: the SECURE flag bit is cleared; any other bit
    /// outside `keep` is denied.
    XmlDesc { object: Object, keep: u32 },
    /// Acting on a domain: allowed only when the grant names the command; `check` says
    /// what the arguments may hold.
    Act(Action, Check),
    /// Domain event (de)registration.
    Events(Events),
}

/// Which listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// connect list all domains: the reply filtered, its count fixed.
    All,
    /// connect num of domains (running).
    NumActive,
    /// connect list domains (ids of running ones).
    ActiveIds,
    /// connect num of defined domains (shut off).
    NumInactive,
    /// connect list defined domains (names of shut-off ones).
    InactiveNames,
    /// connect get all domain stats (and domain list get stats, which is the same call
    /// with domains named): records filtered, every named domain must be visible.
    Stats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    ByName,
    ByUuid,
    ById,
}

/// Where the domain is in the first argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// `remote_nonnull_domain dom` first.
    Domain,
    /// `remote_nonnull_domain_snapshot` / `_checkpoint` first: a name, then the domain.
    Child,
}

/// What an action's arguments may hold, after the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing follows the domain.
    Bare,
    /// One `unsigned int flags` follows, every set bit within the mask.
    Flags(u32),
    /// Exactly the linux keycodes of Ctrl, Alt and Delete.
    SendKey,
    /// A screen number, then flags that must be 0; opens a stream from the daemon.
    Screenshot,
    /// A device name, then flags without VIR_DOMAIN_CONSOLE_FORCE; opens a stream both ways.
    Console,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    /// Registration or deregistration without a domain.
    Plain,
    /// connect domain event callback register any: a named domain must be visible.
    CallbackRegister,
}

// Flag bits, from libvirt-domain.h.
/// VIR_DOMAIN_XML_SECURE (and the snapshot, checkpoint and save-image SECURE flags, all bit 0).
pub const XML_SECURE: u32 = 1;
const XML_INACTIVE: u32 = 1 << 1;
const XML_UPDATE_CPU: u32 = 1 << 2;
/// VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN | VIR_DOMAIN_CHECKPOINT_XML_SIZE.
const CHECKPOINT_XML_NO_DOMAIN_SIZE: u32 = (1 << 1) | (1 << 2);
const START_PAUSED: u32 = 1;
/// ACPI power button, initctl, signal, paravirt — not the guest agent, which libvirt
/// annotates `domain:write`.
const SHUTDOWN_WITHOUT_AGENT: u32 = 1 | (1 << 2) | (1 << 3) | (1 << 4);
const DESTROY_GRACEFUL: u32 = 1;
pub const CONSOLE_FORCE: u32 = 1;
pub const CONSOLE_SAFE: u32 = 1 << 1;
/// VIR_CONNECT_RO.
pub const CONNECT_RO: u32 = 1;
/// VIR_CONNECT_LIST_DOMAINS_ACTIVE, _INACTIVE.
pub const LIST_ACTIVE: u32 = 1;
pub const LIST_INACTIVE: u32 = 1 << 1;
/// VIR_KEYCODE_SET_LINUX and KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE (linux/input-event-codes.h).
pub const KEYCODE_SET_LINUX: u32 = 0;
pub const CTRL_ALT_DEL: [u32; 3] = [29, 56, 111];

use Rule::*;

/// The allowlist. Everything else is denied with libvirt's access-denied error.
pub const TABLE: &[(u32, Rule)] = &[
    // The connection: what a client needs to connect and describe the host.
    (proc::CONNECT_OPEN, Open),
    (proc::CONNECT_CLOSE, Close),
    (3, Connection),   // CONNECT_GET_TYPE
    (4, Connection),   // CONNECT_GET_VERSION
    (5, Connection),   // CONNECT_GET_MAX_VCPUS
    (6, Connection),   // NODE_GET_INFO
    (7, Connection),   // CONNECT_GET_CAPABILITIES
    (59, Connection),  // CONNECT_GET_HOSTNAME
    (60, Connection),  // CONNECT_SUPPORTS_FEATURE
    (66, Connection),  // AUTH_LIST
    (70, Connection),  // AUTH_POLKIT
    (101, Connection), // NODE_GET_CELLS_FREE_MEMORY
    (102, Connection), // NODE_GET_FREE_MEMORY
    (110, Connection), // CONNECT_GET_URI
    (122, Connection), // NODE_GET_SECURITY_MODEL (virsh dominfo)
    (149, Connection), // CONNECT_IS_SECURE
    (157, Connection), // CONNECT_GET_LIB_VERSION
    (227, Connection), // NODE_GET_CPU_STATS
    (228, Connection), // NODE_GET_MEMORY_STATS
    (312, Connection), // CONNECT_GET_CPU_MODEL_NAMES
    (proc::CONNECT_GET_DOMAIN_CAPABILITIES, DomainCapabilities),
    (360, Connection), // CONNECT_REGISTER_CLOSE_CALLBACK
    (361, Connection), // CONNECT_UNREGISTER_CLOSE_CALLBACK
    // Listings, filtered.
    (proc::CONNECT_LIST_ALL_DOMAINS, List(List::All)),
    (proc::CONNECT_NUM_OF_DOMAINS, List(List::NumActive)),
    (proc::CONNECT_LIST_DOMAINS, List(List::ActiveIds)),
    (
        proc::CONNECT_NUM_OF_DEFINED_DOMAINS,
        List(List::NumInactive),
    ),
    (
        proc::CONNECT_LIST_DEFINED_DOMAINS,
        List(List::InactiveNames),
    ),
    (proc::CONNECT_GET_ALL_DOMAIN_STATS, List(List::Stats)),
    // Lookups.
    (proc::DOMAIN_LOOKUP_BY_NAME, Lookup(Lookup::ByName)),
    (proc::DOMAIN_LOOKUP_BY_UUID, Lookup(Lookup::ByUuid)),
    (proc::DOMAIN_LOOKUP_BY_ID, Lookup(Lookup::ById)),
    // Reading a visible domain: `@acl: domain:read` and nothing more.
    (
        proc::DOMAIN_GET_XML_DESC,
        XmlDesc {
            object: Object::Domain,
            keep: XML_INACTIVE | XML_UPDATE_CPU,
        },
    ),
    (15, Read(Object::Domain)),  // DOMAIN_GET_AUTOSTART
    (16, Read(Object::Domain)),  // DOMAIN_GET_INFO
    (17, Read(Object::Domain)),  // DOMAIN_GET_MAX_MEMORY
    (18, Read(Object::Domain)),  // DOMAIN_GET_MAX_VCPUS
    (19, Read(Object::Domain)),  // DOMAIN_GET_OS_TYPE
    (20, Read(Object::Domain)),  // DOMAIN_GET_VCPUS
    (56, Read(Object::Domain)),  // DOMAIN_GET_SCHEDULER_TYPE
    (57, Read(Object::Domain)),  // DOMAIN_GET_SCHEDULER_PARAMETERS
    (64, Read(Object::Domain)),  // DOMAIN_BLOCK_STATS
    (65, Read(Object::Domain)),  // DOMAIN_INTERFACE_STATS
    (121, Read(Object::Domain)), // DOMAIN_GET_SECURITY_LABEL
    (150, Read(Object::Domain)), // DOMAIN_IS_ACTIVE
    (151, Read(Object::Domain)), // DOMAIN_IS_PERSISTENT
    (159, Read(Object::Domain)), // DOMAIN_MEMORY_STATS
    (163, Read(Object::Domain)), // DOMAIN_GET_JOB_INFO
    (183, Read(Object::Domain)), // DOMAIN_HAS_MANAGED_SAVE_IMAGE
    (
        186, // DOMAIN_SNAPSHOT_GET_XML_DESC
        XmlDesc {
            object: Object::Child,
            keep: 0,
        },
    ),
    (187, Read(Object::Domain)), // DOMAIN_SNAPSHOT_NUM
    (188, Read(Object::Domain)), // DOMAIN_SNAPSHOT_LIST_NAMES
    (189, Read(Object::Domain)), // DOMAIN_SNAPSHOT_LOOKUP_BY_NAME
    (190, Read(Object::Domain)), // DOMAIN_HAS_CURRENT_SNAPSHOT
    (191, Read(Object::Domain)), // DOMAIN_SNAPSHOT_CURRENT
    (194, Read(Object::Domain)), // DOMAIN_GET_BLOCK_INFO
    (198, Read(Object::Domain)), // DOMAIN_GET_MEMORY_PARAMETERS
    (202, Read(Object::Domain)), // DOMAIN_IS_UPDATED
    (206, Read(Object::Domain)), // DOMAIN_GET_BLKIO_PARAMETERS
    (212, Read(Object::Domain)), // DOMAIN_GET_STATE
    (223, Read(Object::Domain)), // DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS
    (229, Read(Object::Domain)), // DOMAIN_GET_CONTROL_INFO
    (230, Read(Object::Domain)), // DOMAIN_GET_VCPU_PIN_INFO
    (238, Read(Object::Domain)), // DOMAIN_GET_BLOCK_JOB_INFO
    (243, Read(Object::Domain)), // DOMAIN_BLOCK_STATS_FLAGS
    (244, Read(Object::Child)),  // DOMAIN_SNAPSHOT_GET_PARENT
    (246, Read(Object::Child)),  // DOMAIN_SNAPSHOT_NUM_CHILDREN
    (247, Read(Object::Child)),  // DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES
    (253, Read(Object::Domain)), // DOMAIN_GET_BLOCK_IO_TUNE
    (255, Read(Object::Domain)), // DOMAIN_GET_NUMA_PARAMETERS
    (257, Read(Object::Domain)), // DOMAIN_GET_INTERFACE_PARAMETERS
    (262, Read(Object::Domain)), // DOMAIN_GET_CPU_STATS
    (263, Read(Object::Domain)), // DOMAIN_GET_DISK_ERRORS
    (265, Read(Object::Domain)), // DOMAIN_GET_METADATA
    (271, Read(Object::Child)),  // DOMAIN_SNAPSHOT_IS_CURRENT
    (272, Read(Object::Child)),  // DOMAIN_SNAPSHOT_HAS_METADATA
    (274, Read(Object::Domain)), // DOMAIN_LIST_ALL_SNAPSHOTS
    (275, Read(Object::Child)),  // DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN
    (278, Read(Object::Domain)), // DOMAIN_GET_SECURITY_LABEL_LIST
    (280, Read(Object::Domain)), // DOMAIN_GET_EMULATOR_PIN_INFO
    (298, Read(Object::Domain)), // DOMAIN_GET_JOB_STATS
    (351, Read(Object::Domain)), // DOMAIN_GET_IOTHREAD_INFO
    (365, Read(Object::Domain)), // DOMAIN_GET_PERF_EVENTS
    (
        388, // DOMAIN_MANAGED_SAVE_GET_XML_DESC
        XmlDesc {
            object: Object::Domain,
            keep: 0,
        },
    ),
    (396, Read(Object::Domain)), // DOMAIN_GET_LAUNCH_SECURITY_INFO
    (
        412, // DOMAIN_CHECKPOINT_GET_XML_DESC
        XmlDesc {
            object: Object::Child,
            keep: CHECKPOINT_XML_NO_DOMAIN_SIZE,
        },
    ),
    (413, Read(Object::Domain)), // DOMAIN_LIST_ALL_CHECKPOINTS
    (414, Read(Object::Child)),  // DOMAIN_CHECKPOINT_LIST_ALL_CHILDREN
    (415, Read(Object::Domain)), // DOMAIN_CHECKPOINT_LOOKUP_BY_NAME
    (416, Read(Object::Child)),  // DOMAIN_CHECKPOINT_GET_PARENT
    (422, Read(Object::Domain)), // DOMAIN_BACKUP_GET_XML_DESC
    (426, Read(Object::Domain)), // DOMAIN_GET_MESSAGES
    // Acting, by the grant's command.
    (proc::DOMAIN_CREATE, Act(Action::Start, Check::Bare)),
    (
        proc::DOMAIN_CREATE_WITH_FLAGS,
        Act(Action::Start, Check::Flags(START_PAUSED)),
    ),
    (proc::DOMAIN_SHUTDOWN, Act(Action::Shutdown, Check::Bare)),
    (
        proc::DOMAIN_SHUTDOWN_FLAGS,
        Act(Action::Shutdown, Check::Flags(SHUTDOWN_WITHOUT_AGENT)),
    ),
    (
        proc::DOMAIN_REBOOT,
        Act(Action::Reboot, Check::Flags(SHUTDOWN_WITHOUT_AGENT)),
    ),
    (proc::DOMAIN_RESET, Act(Action::Reset, Check::Flags(0))),
    (proc::DOMAIN_DESTROY, Act(Action::Destroy, Check::Bare)),
    (
        proc::DOMAIN_DESTROY_FLAGS,
        Act(Action::Destroy, Check::Flags(DESTROY_GRACEFUL)),
    ),
    (proc::DOMAIN_SUSPEND, Act(Action::Suspend, Check::Bare)),
    (proc::DOMAIN_RESUME, Act(Action::Resume, Check::Bare)),
    (
        proc::DOMAIN_SEND_KEY,
        Act(Action::CtrlAltDel, Check::SendKey),
    ),
    (
        proc::DOMAIN_SCREENSHOT,
        Act(Action::Screenshot, Check::Screenshot),
    ),
    (
        proc::DOMAIN_OPEN_CONSOLE,
        Act(Action::Console, Check::Console),
    ),
    // Domain events; every event the daemon sends is filtered by its domain.
    (proc::CONNECT_DOMAIN_EVENT_REGISTER, Events(Events::Plain)),
    (proc::CONNECT_DOMAIN_EVENT_DEREGISTER, Events(Events::Plain)),
    (
        proc::CONNECT_DOMAIN_EVENT_REGISTER_ANY,
        Events(Events::Plain),
    ),
    (
        proc::CONNECT_DOMAIN_EVENT_DEREGISTER_ANY,
        Events(Events::Plain),
    ),
    (
        proc::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
        Events(Events::CallbackRegister),
    ),
    (
        proc::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
        Events(Events::Plain),
    ),
];

/// The rule for a procedure of the remote program; `None` means denied.
pub fn rule(procedure: u32) -> Option<Rule> {
    TABLE
        .iter()
        .find(|(number, _)| *number == procedure)
        .map(|(_, rule)| *rule)
}

/// Where the domain is in a domain event the daemon sends (a MESSAGE of the remote
/// program).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventShape {
    /// The domain is the first field (the old events, 107–311).
    Domain,
    /// A callback id, then the domain.
    Callback,
    /// A callback id and a reason, then the domain (pmwakeup, pmsuspend, pmsuspend-disk).
    CallbackReason,
    /// An event of the connection, naming no domain (connection closed).
    Connection,
}

/// The domain events of libvirt 9.0 and where their domain is; any other MESSAGE of the
/// remote program is dropped.
pub fn event_shape(procedure: u32) -> Option<EventShape> {
    use EventShape::*;
    Some(match procedure {
        107 | 169..=173 | 195 | 224 | 241 | 248 | 268..=270 | 276 | 292 | 311 => Domain,
        318..=328 | 331 | 333 | 339 | 346 | 348 | 354 | 359 | 363 | 367 | 379 | 385 | 423 | 438 => {
            Callback
        }
        329 | 330 | 332 => CallbackReason,
        proc::CONNECT_EVENT_CONNECTION_CLOSED => Connection,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::remote::{PROCEDURES, procedure_acl, procedure_name};

    fn acls(procedure: u32) -> Vec<&'static str> {
        procedure_acl(procedure)
            .unwrap_or_else(|| panic!("{procedure} is not a libvirt procedure"))
            .split(' ')
            .collect()
    }

    /// The acl an action's procedures must carry (the first annotation).
    fn action_acl(action: Action) -> &'static str {
        match action {
            Action::Start => "domain:start",
            Action::Shutdown | Action::Reboot => "domain:init_control",
            Action::Reset => "domain:reset",
            Action::Destroy => "domain:stop",
            Action::Suspend | Action::Resume => "domain:suspend",
            Action::CtrlAltDel => "domain:send_input",
            Action::Screenshot => "domain:screenshot",
            Action::Console => "domain:open_device",
            Action::Status | Action::Display => "(no procedure)",
        }
    }

    /// Verbs in a procedure's name that mean it changes something.
    const WRITE_WORDS: &[&str] = &[
        "SET",
        "DEFINE",
        "UNDEFINE",
        "CREATE",
        "DELETE",
        "REVERT",
        "ATTACH",
        "DETACH",
        "UPDATE",
        "MIGRATE",
        "SAVE",
        "RESTORE",
        "PIN",
        "INJECT",
        "SEND",
        "ABORT",
        "COMMIT",
        "COPY",
        "PULL",
        "REBASE",
        "RESIZE",
        "PEEK",
        "RENAME",
        "FREEZE",
        "THAW",
        "TRIM",
        "AUTHORIZED",
        "OPEN",
        "ADD",
        "DEL",
        "START",
        "BEGIN",
        "DUMP",
        "ALLOC",
        "RESET",
        "SHUTDOWN",
        "REBOOT",
        "DESTROY",
        "SUSPEND",
        "RESUME",
        "MANAGED",
    ];

    /// Words in a procedure's name that say it only reads.
    const READ_WORDS: &[&str] = &[
        "GET", "IS", "HAS", "LIST", "NUM", "LOOKUP", "STATS", "CURRENT", "PARENT",
    ];

    /// The words of a name, less the objects a read may be of (a managed save image, a
    /// snapshot, a checkpoint, a backup).
    fn name_words(procedure: u32) -> Vec<String> {
        let name = procedure_name(procedure)
            .unwrap_or("")
            .replace("MANAGED_SAVE", "");
        name.split('_')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_row_is_a_libvirt_procedure_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (number, _) in TABLE {
            assert!(procedure_name(*number).is_some(), "{number}");
            assert!(seen.insert(*number), "{number} twice");
        }
    }

    #[test]
    fn reads_are_domain_read_and_nothing_more_and_never_change_anything() {
        for (number, rule) in TABLE {
            let name = procedure_name(*number).unwrap_or("");
            let acl = acls(*number);
            match rule {
                Read(_) => {
                    assert_eq!(acl, ["domain:read"], "{name}");
                }
                XmlDesc { keep, .. } => {
                    assert_eq!(acl[0], "domain:read", "{name}");
                    // The other annotations are read_secure, bound to flags the filter clears
                    // (SECURE) or refuses (any bit outside `keep`, MIGRATABLE among them).
                    for extra in &acl[1..] {
                        assert!(extra.starts_with("domain:read_secure:"), "{name}: {extra}");
                    }
                    assert_eq!(keep & XML_SECURE, 0, "{name} keeps SECURE");
                    if *number == proc::DOMAIN_GET_XML_DESC {
                        assert_eq!(keep & (1 << 3), 0, "MIGRATABLE is read_secure");
                    }
                    assert!(name.ends_with("XML_DESC"), "{name}");
                }
                _ => continue,
            }
            assert!(name.starts_with("DOMAIN_"), "{name}");
            // The first verb of the name says what it does: GET_VCPU_PIN_INFO reads a pin,
            // PIN_VCPU writes one.
            let words = name_words(*number);
            let verb = words
                .iter()
                .find(|w| READ_WORDS.contains(&w.as_str()) || WRITE_WORDS.contains(&w.as_str()));
            assert!(
                verb.is_some_and(|v| READ_WORDS.contains(&v.as_str())),
                "{name} does not read ({verb:?})"
            );
        }
        // libvirt annotates DOMAIN_SET_SCHEDULER_PARAMETERS `domain:read`; it writes.
        assert_eq!(acls(58), ["domain:read"]);
        assert_eq!(rule(58), None);
    }

    #[test]
    fn actions_carry_their_commands_acl_and_no_other_acl_is_read_or_connection() {
        for (number, rule) in TABLE {
            let name = procedure_name(*number).unwrap_or("");
            let acl = acls(*number);
            match rule {
                Act(action, check) => {
                    assert_eq!(acl[0], action_acl(*action), "{name}");
                    // A flag-bound write (the guest agent) must be outside the mask.
                    for extra in &acl[1..] {
                        let verb = if name.contains("SHUTDOWN") {
                            "SHUTDOWN"
                        } else {
                            "REBOOT"
                        };
                        let agent = format!("domain:write:VIR_DOMAIN_{verb}_GUEST_AGENT");
                        assert_eq!(*extra, agent, "{name}");
                        let Check::Flags(mask) = check else {
                            panic!("{name}: a conditional acl needs a flag check")
                        };
                        assert_eq!(mask & (1 << 1), 0, "{name} lets the guest agent in");
                    }
                }
                Connection | Open | Close => {
                    assert!(
                        acl == ["none"] || acl == ["connect:getattr"] || acl == ["connect:read"],
                        "{name}: {acl:?}"
                    );
                    assert!(!name.starts_with("DOMAIN_"), "{name}");
                }
                DomainCapabilities => assert_eq!(acl, ["connect:write"]),
                List(_) => assert_eq!(acl, ["connect:search_domains"], "{name}"),
                Lookup(_) => assert_eq!(acl, ["domain:getattr"], "{name}"),
                Events(_) => assert!(
                    acl == ["connect:search_domains"] || acl == ["connect:read"],
                    "{name}: {acl:?}"
                ),
                Read(_) | XmlDesc { .. } => {}
            }
        }
    }

    #[test]
    fn nothing_of_other_objects_or_of_changing_things_is_allowed() {
        for (index, (name, acl)) in PROCEDURES.iter().enumerate() {
            let number = index as u32 + 1;
            let Some(rule) = rule(number) else { continue };
            for object in [
                "network",
                "storage",
                "nwfilter",
                "secret",
                "interface",
                "node_device",
            ] {
                assert!(!acl.contains(object), "{name} ({acl}) is allowed: {rule:?}");
            }
            for write in [
                "domain:write",
                "domain:save",
                "domain:delete",
                "domain:migrate",
                "domain:hibernate",
                "domain:snapshot",
                "domain:checkpoint",
                "domain:core_dump",
                "domain:block_write",
                "domain:mem_read",
                "domain:block_read",
                "domain:set_password",
                "domain:open_graphics",
            ] {
                // Only as a flag-bound condition the rule refuses (checked above).
                let unconditional = acl.split(' ').any(|a| a == write);
                assert!(!unconditional, "{name} ({acl}) is allowed: {rule:?}");
            }
        }
        for denied in [
            8, 10, 11, 13, 26, 29, 30, 31, 32, 35, 53, 54, 55, 58, 103, 104, 192, 193, 249, 296,
            343, 350, 358, 443,
        ] {
            assert_eq!(rule(denied), None, "{:?}", procedure_name(denied));
        }
    }

    #[test]
    fn every_domain_event_of_libvirt_has_a_shape_and_nothing_else_does() {
        for (index, (name, _)) in PROCEDURES.iter().enumerate() {
            let number = index as u32 + 1;
            let is_domain_event = name.starts_with("DOMAIN_EVENT_");
            let shape = event_shape(number);
            if is_domain_event {
                assert!(
                    matches!(
                        shape,
                        Some(
                            EventShape::Domain | EventShape::Callback | EventShape::CallbackReason
                        )
                    ),
                    "{name}"
                );
                let callback = name.starts_with("DOMAIN_EVENT_CALLBACK_") || number >= 339;
                assert_eq!(shape == Some(EventShape::Domain), !callback, "{name}");
            } else if number != proc::CONNECT_EVENT_CONNECTION_CLOSED {
                assert_eq!(shape, None, "{name}");
            }
        }
    }
}
