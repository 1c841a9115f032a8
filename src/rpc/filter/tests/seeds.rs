//! Seeds for the `rpc_filter` fuzz target (FUZZING.md): whole sessions of a client and a
//! daemon that answers as libvirt would, in the target's input format, so the fuzzer
//! starts from calls the filter forwards, rechecks, rewrites and streams rather than from
//! bytes it refuses. `write_fuzz_seeds` writes them; every `cargo test` runs them.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::rpc::remote::Uuid;

/// The fuzz target's first grants (selector 0): web1 and web2 seen, every action on web1.
fn fuzz_grants() -> Fake {
    Fake {
        see: vec!["web1", "web2"],
        act: Action::ALL.iter().map(|a| (*a, "web1")).collect(),
    }
}

fn web2() -> Domain {
    dom("web2", 3, -1)
}

fn domains() -> [Domain; 3] {
    [web1(), web2(), db1()]
}

/// The daemon's answer to a call the filter sent: the domains above, as libvirt knows them.
fn daemon_answer(sent: &[u8]) -> Vec<u8> {
    let p = parse(sent);
    let (number, serial) = (p.header.proc, p.header.serial);
    let mut r = Reader::new(p.body);
    let all = domains();
    let found = match number {
        proc::DOMAIN_LOOKUP_BY_UUID => {
            let uuid = Uuid::read(&mut r).unwrap();
            Some(all.iter().find(|d| d.uuid == uuid))
        }
        proc::DOMAIN_LOOKUP_BY_NAME => {
            let name = r.string(STRING_MAX).unwrap();
            Some(all.iter().find(|d| d.name == name))
        }
        proc::DOMAIN_LOOKUP_BY_ID => {
            let id = r.i32().unwrap();
            Some(all.iter().find(|d| d.id == id))
        }
        _ => None,
    };
    let answer = match (number, found) {
        (_, Some(Some(d))) => dom_body(d),
        (_, Some(None)) => {
            let error = not_found(Driver::Qemu, Some("no domain with matching id 99"));
            return error_reply(number, serial, &error);
        }
        (proc::CONNECT_LIST_ALL_DOMAINS, _) => list_all_reply(&all),
        (proc::CONNECT_GET_ALL_DOMAIN_STATS, _) => body(|w| {
            w.u32(all.len() as u32);
            for d in &all {
                d.write(w);
                w.u32(2);
                w.string("state.state").u32(1).i32(1);
                w.string("state.reason").u32(7).string("r");
            }
        }),
        (proc::DOMAIN_SCREENSHOT, _) => body(|w| {
            w.optional_string(Some("image/png"));
        }),
        _ => Vec::new(),
    };
    reply(number, serial, &answer)
}

/// A session that writes what it is sent in the fuzz target's input format: a selector
/// byte, then `[side | seconds << 1, length (2 bytes), packet]` for each packet.
struct Recording {
    session: Session,
    grants: Fake,
    input: Vec<u8>,
}

impl Recording {
    /// A session as the fuzz target sets it up for `selector`: the grants by its value
    /// modulo 3 (0 those above, 1 web2 seen, 2 nothing), the test driver by its bit 7.
    fn new(selector: u8) -> Recording {
        let grants = match selector % 3 {
            0 => fuzz_grants(),
            1 => Fake {
                see: vec!["web2"],
                act: vec![],
            },
            _ => nobody(),
        };
        let uri = if selector & 0x80 == 0 {
            "qemu:///system"
        } else {
            "test:///default"
        };
        Recording {
            session: Session::new(uri),
            grants,
            input: vec![selector],
        }
    }

    fn send(&mut self, from_daemon: bool, seconds: u8, packet: Vec<u8>) -> Vec<Out> {
        self.input.push(u8::from(from_daemon) | (seconds << 1));
        let len = u16::try_from(packet.len()).expect("a small packet");
        self.input.extend_from_slice(&len.to_be_bytes());
        self.input.extend_from_slice(&packet);
        self.session.now += Duration::from_secs(seconds.into());
        let result = if from_daemon {
            self.session.daemon(packet, &self.grants)
        } else {
            self.session.client(packet, &self.grants)
        };
        result.expect("a seed session never ends the connection")
    }

    /// A client's call and the daemon's answer to each call it makes the filter send
    /// (a recheck, then the call itself); the serial the last one went under, if any.
    fn call(&mut self, seconds: u8, packet: Vec<u8>) -> Option<u32> {
        let mut to_daemon: VecDeque<Vec<u8>> = split(&self.send(false, seconds, packet))
            .0
            .into_iter()
            .cloned()
            .collect();
        let mut last = None;
        while let Some(sent) = to_daemon.pop_front() {
            last = Some(parse(&sent).header.serial);
            let out = self.send(true, 0, daemon_answer(&sent));
            to_daemon.extend(split(&out).0.into_iter().cloned());
        }
        last
    }

    fn stream(&mut self, from_daemon: bool, number: u32, serial: u32, status: Status) {
        let data: &[u8] = if status == Status::Continue {
            b"data"
        } else {
            b""
        };
        let bytes = packet(REMOTE_PROGRAM, number, Type::Stream, serial, status, data);
        self.send(from_daemon, 0, bytes);
    }

    fn event(&mut self, number: u32, build: impl FnOnce(&mut Writer)) {
        let bytes = packet(
            REMOTE_PROGRAM,
            number,
            Type::Message,
            0,
            Status::Ok,
            &body(build),
        );
        self.send(true, 0, bytes);
    }
}

/// Opens the connection and lists the domains, as every client starts.
fn connected(selector: u8) -> Recording {
    let mut s = Recording::new(selector);
    let open = body(|w| {
        w.optional_string(Some("qemu:///system")).u32(0);
    });
    s.call(0, call(proc::CONNECT_OPEN, 1, &open));
    let list = body(|w| {
        w.i32(1).u32(0);
    });
    s.call(0, call(proc::CONNECT_LIST_ALL_DOMAINS, 2, &list));
    s
}

fn listings(selector: u8) -> Vec<u8> {
    let mut s = connected(selector);
    let count = |max: i32| {
        body(|w| {
            w.i32(max);
        })
    };
    s.call(0, call(3, 3, b""));
    s.call(0, call(proc::CONNECT_NUM_OF_DOMAINS, 4, b""));
    s.call(0, call(proc::CONNECT_LIST_DOMAINS, 5, &count(10)));
    s.call(0, call(proc::CONNECT_NUM_OF_DEFINED_DOMAINS, 6, b""));
    s.call(0, call(proc::CONNECT_LIST_DEFINED_DOMAINS, 7, &count(10)));
    let stats = |doms: &[Domain]| {
        body(|w| {
            w.u32(doms.len() as u32);
            for d in doms {
                d.write(w);
            }
            w.u32(1).u32(0);
        })
    };
    s.call(0, call(proc::CONNECT_GET_ALL_DOMAIN_STATS, 8, &stats(&[])));
    s.call(
        0,
        call(proc::CONNECT_GET_ALL_DOMAIN_STATS, 9, &stats(&[web1()])),
    );
    s.call(
        0,
        call(proc::CONNECT_GET_ALL_DOMAIN_STATS, 10, &stats(&[db1()])),
    );
    s.call(0, call(proc::CONNECT_CLOSE, 11, b""));
    s.input
}

fn lookups_and_reads(selector: u8) -> Vec<u8> {
    let mut s = connected(selector);
    let name = |n: &str| {
        body(|w| {
            w.string(n);
        })
    };
    s.call(0, call(proc::DOMAIN_LOOKUP_BY_NAME, 3, &name("web1")));
    s.call(0, call(proc::DOMAIN_LOOKUP_BY_NAME, 4, &name("db1")));
    s.call(
        0,
        call(
            proc::DOMAIN_LOOKUP_BY_UUID,
            5,
            &body(|w| {
                w.opaque_fixed(&[2; 16]);
            }),
        ),
    );
    s.call(
        0,
        call(
            proc::DOMAIN_LOOKUP_BY_ID,
            6,
            &body(|w| {
                w.i32(3);
            }),
        ),
    );
    s.call(
        0,
        call(
            proc::DOMAIN_LOOKUP_BY_ID,
            7,
            &body(|w| {
                w.i32(99);
            }),
        ),
    );
    s.call(0, call(16, 8, &dom_body(&web1())));
    s.call(
        0,
        call(proc::DOMAIN_GET_XML_DESC, 9, &dom_flags(&web1(), 1)),
    );
    s.call(0, call(16, 10, &dom_body(&db1())));
    // Past FRESH: the read waits for a recheck.
    s.call(4, call(16, 11, &dom_body(&web2())));
    s.input
}

fn actions() -> Vec<u8> {
    let mut s = connected(0);
    s.call(0, call(proc::DOMAIN_CREATE, 3, &dom_body(&web1())));
    s.call(
        0,
        call(proc::DOMAIN_SHUTDOWN_FLAGS, 4, &dom_flags(&web1(), 1)),
    );
    s.call(
        0,
        call(proc::DOMAIN_DESTROY_FLAGS, 5, &dom_flags(&web2(), 0)),
    );
    s.call(0, call(proc::DOMAIN_SUSPEND, 6, &dom_body(&db1())));
    s.call(0, call(proc::DOMAIN_REBOOT, 7, &dom_flags(&web1(), 2)));
    let keys = body(|w| {
        web1().write(w);
        w.u32(0).u32(0).u32(3).u32(29).u32(56).u32(111).u32(0);
    });
    s.call(0, call(proc::DOMAIN_SEND_KEY, 8, &keys));
    s.input
}

fn streams() -> Vec<u8> {
    let mut s = connected(0);
    let screenshot = body(|w| {
        web1().write(w);
        w.u32(0).u32(0);
    });
    let number = proc::DOMAIN_SCREENSHOT;
    let serial = s.call(0, call(number, 3, &screenshot)).unwrap();
    s.stream(true, number, serial, Status::Continue);
    s.stream(true, number, serial, Status::Ok);
    s.stream(false, number, 3, Status::Ok);
    let console = body(|w| {
        web1().write(w);
        w.optional_string(None).u32(0);
    });
    let number = proc::DOMAIN_OPEN_CONSOLE;
    let serial = s.call(0, call(number, 4, &console)).unwrap();
    s.stream(false, number, 4, Status::Continue);
    s.stream(true, number, serial, Status::Continue);
    s.stream(false, number, 4, Status::Ok);
    s.stream(true, number, serial, Status::Ok);
    s.input
}

fn events_and_keepalive() -> Vec<u8> {
    let mut s = connected(0);
    let register = |d: Option<&Domain>| {
        body(|w| {
            w.i32(0);
            w.bool(d.is_some());
            if let Some(d) = d {
                d.write(w);
            }
        })
    };
    let number = proc::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY;
    s.call(0, call(number, 3, &register(None)));
    s.call(0, call(number, 4, &register(Some(&web1()))));
    s.call(0, call(number, 5, &register(Some(&db1()))));
    for d in [web1(), db1()] {
        s.event(318, |w| {
            w.i32(1);
            d.write(w);
            w.i32(2).i32(0);
        });
    }
    s.event(330, |w| {
        w.i32(1).i32(0);
        web1().write(w);
        w.i32(0);
    });
    s.event(107, |w| {
        web2().write(w);
        w.i32(0).i32(0);
    });
    s.event(proc::CONNECT_EVENT_CONNECTION_CLOSED, |w| {
        w.i32(0);
    });
    let ping = packet(KEEPALIVE_PROGRAM, 1, Type::Message, 0, Status::Ok, b"");
    let pong = packet(KEEPALIVE_PROGRAM, 2, Type::Message, 0, Status::Ok, b"");
    s.send(true, 0, ping);
    s.send(false, 0, pong);
    s.input
}

fn denials() -> Vec<u8> {
    let mut s = connected(0);
    s.call(
        0,
        call(
            11,
            3,
            &body(|w| {
                w.string("<domain/>");
            }),
        ),
    );
    s.call(
        0,
        packet(
            QEMU_PROGRAM,
            1,
            Type::Call,
            4,
            Status::Ok,
            &dom_body(&web1()),
        ),
    );
    let fds = packet(REMOTE_PROGRAM, 14, Type::CallWithFds, 5, Status::Ok, b"");
    s.call(0, fds);
    s.call(0, call(99_999, 6, b""));
    let capabilities = body(|w| {
        w.optional_string(Some("/usr/bin/evil"));
    });
    s.call(
        0,
        call(proc::CONNECT_GET_DOMAIN_CAPABILITIES, 7, &capabilities),
    );
    s.input
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("listings", listings(0)),
        ("listings-nobody", listings(2)),
        ("lookups", lookups_and_reads(0)),
        ("lookups-test-driver", lookups_and_reads(0x81)),
        ("actions", actions()),
        ("streams", streams()),
        ("events", events_and_keepalive()),
        ("denials", denials()),
    ]
}

#[test]
fn the_fuzz_seeds_are_whole_sessions_the_filter_never_ends() {
    for (name, seed) in seeds() {
        assert!(seed.len() > 100, "{name}");
    }
}

/// Refreshes `fuzz/seeds/rpc_filter` after the filter or these sessions change:
/// `cargo test --lib -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes files into the source tree; run by hand to refresh the fuzz seeds"]
fn write_fuzz_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/rpc_filter");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, seed) in seeds() {
        std::fs::write(dir.join(name), seed).unwrap();
    }
}
