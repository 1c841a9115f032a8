//! Fuzzes the RPC filter with arbitrary byte streams from both sides: the first byte picks
//! the grants, then each chunk is `[control, length high, length low, bytes...]`, where
//! control bit 0 says which side sent it (client or daemon) and bits 1–3 how many seconds
//! pass first. Each side's bytes go through its own deframer into the filter, as in the
//! relay. Checks: no panic; every packet out parses, and none for the daemon is of another
//! program than remote and keepalive, carries file descriptors or a stream hole; and
//! nothing forwarded to the daemon names a domain by a UUID the filter has not learnt as
//! one the grants let it see (or, for an action, do) — the injected re-check excepted,
//! which is a lookup by a learnt UUID.

#![no_main]
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use dromaius::action::Action;
use dromaius::rpc::allow::{self, Check, Events, List, Object, Rule};
use dromaius::rpc::remote::{
    self, DOMAIN_LIST_MAX, DOMAIN_MIN_SIZE, Domain, KEEPALIVE_PROGRAM, REMOTE_PROGRAM, Uuid,
};
use dromaius::rpc::wire::{Deframer, Packet, Type};
use dromaius::rpc::xdr::Reader;
use dromaius::rpc::{Filter, Grants, Out};
use libfuzzer_sys::fuzz_target;

struct Fixed {
    see: &'static [&'static str],
    act: &'static [(Action, &'static str)],
}

impl Grants for Fixed {
    fn may_see(&self, name: &str) -> bool {
        self.see.contains(&name)
    }
    fn may(&self, action: Action, name: &str) -> bool {
        self.act.contains(&(action, name))
    }
}

const ALL_ON_WEB1: &[(Action, &str)] = &[
    (Action::Start, "web1"),
    (Action::Shutdown, "web1"),
    (Action::Reboot, "web1"),
    (Action::Reset, "web1"),
    (Action::Destroy, "web1"),
    (Action::Suspend, "web1"),
    (Action::Resume, "web1"),
    (Action::CtrlAltDel, "web1"),
    (Action::Screenshot, "web1"),
    (Action::Console, "web1"),
];

const GRANTS: [Fixed; 3] = [
    Fixed {
        see: &["web1", "web2"],
        act: ALL_ON_WEB1,
    },
    Fixed {
        see: &["web2"],
        act: &[],
    },
    Fixed { see: &[], act: &[] },
];

/// The UUIDs a call forwarded to the daemon names as its domain argument, and the action
/// it is, by the allowlist's rule for it.
fn named_domains(packet: &Packet<'_>) -> (Vec<Uuid>, Option<Action>) {
    let mut r = Reader::new(packet.body);
    let read = |r: &mut Reader<'_>, child: bool| -> Option<Uuid> {
        if child {
            r.string(remote::STRING_MAX).ok()?;
        }
        Domain::read(r).ok().map(|d| d.uuid)
    };
    match allow::rule(packet.header.proc) {
        Some(Rule::Read(object)) | Some(Rule::XmlDesc { object, .. }) => (
            read(&mut r, object == Object::Child).into_iter().collect(),
            None,
        ),
        Some(Rule::Act(action, _)) => (read(&mut r, false).into_iter().collect(), Some(action)),
        Some(Rule::Events(Events::CallbackRegister)) => {
            let _ = r.i32();
            if r.optional().unwrap_or(false) {
                (read(&mut r, false).into_iter().collect(), None)
            } else {
                (Vec::new(), None)
            }
        }
        Some(Rule::List(List::Stats)) => {
            let count = r.count(DOMAIN_LIST_MAX, DOMAIN_MIN_SIZE).unwrap_or(0);
            let uuids = (0..count).filter_map(|_| read(&mut r, false)).collect();
            (uuids, None)
        }
        _ => (Vec::new(), None),
    }
}

fn check(out: &[Out], filter: &Filter, grants: &Fixed) {
    for o in out {
        let (bytes, to_daemon) = match o {
            Out::ToDaemon(bytes) => (bytes, true),
            Out::ToClient(bytes) => (bytes, false),
            Out::Audit(_) => continue,
        };
        let packet = Packet::parse(bytes).expect("every packet out is well-formed");
        if !to_daemon {
            continue;
        }
        let h = packet.header;
        assert!(
            h.prog == REMOTE_PROGRAM || h.prog == KEEPALIVE_PROGRAM,
            "program {:#x} reached the daemon",
            h.prog
        );
        assert!(
            !matches!(h.kind, Type::CallWithFds | Type::StreamHole),
            "{:?} reached the daemon",
            h.kind
        );
        if h.prog != REMOTE_PROGRAM || h.kind != Type::Call {
            continue;
        }
        if h.proc == remote::proc::DOMAIN_LOOKUP_BY_UUID {
            continue; // the client's own lookups and the filter's re-checks
        }
        assert!(
            allow::rule(h.proc).is_some(),
            "procedure {} reached the daemon",
            h.proc
        );
        let (uuids, action) = named_domains(&packet);
        for uuid in uuids {
            let name = filter
                .learnt_name(&uuid)
                .unwrap_or_else(|| panic!("{uuid} never learnt reached the daemon"));
            assert!(grants.may_see(name), "{name} is not visible");
            if let Some(action) = action {
                assert!(grants.may(action, name), "{action:?} on {name}");
            }
        }
        if let Some(Rule::Act(_, Check::Console)) = allow::rule(h.proc) {
            let mut r = Reader::new(packet.body);
            let _ = Domain::read(&mut r);
            if r.optional().unwrap_or(false) {
                let _ = r.string(remote::STRING_MAX);
            }
            let flags = r.u32().unwrap_or(0);
            assert_eq!(
                flags & allow::CONSOLE_FORCE,
                0,
                "console FORCE reached the daemon"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let grants = &GRANTS[usize::from(selector) % GRANTS.len()];
    let uri = if selector & 0x80 == 0 {
        "qemu:///system"
    } else {
        "test:///default"
    };
    let mut filter = Filter::new(uri);
    let mut frames = [Deframer::new(), Deframer::new()];
    let mut now = Instant::now();
    while let [control, high, low, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let side = usize::from(control & 1);
        now += Duration::from_secs(u64::from((control >> 1) & 7));
        frames[side].feed(chunk);
        loop {
            let packet = match frames[side].next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(_) => return,
            };
            let result = if side == 0 {
                filter.from_client(packet, grants, now)
            } else {
                filter.from_daemon(packet, grants, now)
            };
            match result {
                Ok(out) => check(&out, &filter, grants),
                Err(_) => return,
            }
        }
    }
});
