//! The filter's tests: a session per case, packets built by hand (the hostile ones
//! included), judged by what reaches the daemon, what the client gets and what is audited.

use super::errors::not_found;
use super::*;
use crate::rpc::remote::{Domain, RemoteError, STRING_MAX, proc};
use crate::rpc::xdr::{Reader, Writer};

mod seeds;

/// Grants over fixed names: `see` may be seen, `act` pairs may be done.
struct Fake {
    see: Vec<&'static str>,
    act: Vec<(Action, &'static str)>,
}

impl Grants for Fake {
    fn may_see(&self, name: &str) -> bool {
        self.see.contains(&name)
    }
    fn may(&self, action: Action, name: &str) -> bool {
        self.act.contains(&(action, name))
    }
}

fn alice() -> Fake {
    Fake {
        see: vec!["web1", "web2"],
        act: vec![(Action::Start, "web1"), (Action::Console, "web1")],
    }
}

fn nobody() -> Fake {
    Fake {
        see: vec![],
        act: vec![],
    }
}

fn dom(name: &str, n: u8, id: i32) -> Domain {
    Domain {
        name: name.into(),
        uuid: Uuid([n; 16]),
        id,
    }
}

fn web1() -> Domain {
    dom("web1", 1, 3)
}
fn db1() -> Domain {
    dom("db1", 2, 4)
}

fn packet(prog: u32, proc: u32, kind: Type, serial: u32, status: Status, body: &[u8]) -> Vec<u8> {
    let header = Header {
        prog,
        vers: 1,
        proc,
        kind,
        serial,
        status,
    };
    wire::encode(&header, body)
}

fn call(proc: u32, serial: u32, body: &[u8]) -> Vec<u8> {
    packet(REMOTE_PROGRAM, proc, Type::Call, serial, Status::Ok, body)
}

fn reply(proc: u32, serial: u32, body: &[u8]) -> Vec<u8> {
    packet(REMOTE_PROGRAM, proc, Type::Reply, serial, Status::Ok, body)
}

fn error_reply(proc: u32, serial: u32, error: &RemoteError) -> Vec<u8> {
    packet(
        REMOTE_PROGRAM,
        proc,
        Type::Reply,
        serial,
        Status::Error,
        &error.to_bytes(),
    )
}

fn body(build: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    build(&mut w);
    w.into_bytes()
}

fn dom_body(d: &Domain) -> Vec<u8> {
    body(|w| d.write(w))
}

fn dom_flags(d: &Domain, flags: u32) -> Vec<u8> {
    body(|w| {
        d.write(w);
        w.u32(flags);
    })
}

fn list_all_reply(doms: &[Domain]) -> Vec<u8> {
    body(|w| {
        w.u32(doms.len() as u32);
        for d in doms {
            d.write(w);
        }
        w.u32(doms.len() as u32);
    })
}

fn parse(bytes: &[u8]) -> Packet<'_> {
    Packet::parse(bytes).expect("a well-formed packet")
}

/// The packets for the daemon, the packets for the client, the audit records.
fn split(out: &[Out]) -> (Vec<&Vec<u8>>, Vec<&Vec<u8>>, Vec<&Call>) {
    let (mut d, mut c, mut a) = (Vec::new(), Vec::new(), Vec::new());
    for o in out {
        match o {
            Out::ToDaemon(p) => d.push(p),
            Out::ToClient(p) => c.push(p),
            Out::Audit(call) => a.push(call),
        }
    }
    (d, c, a)
}

fn error_of(bytes: &[u8]) -> (i32, i32, String) {
    let p = parse(bytes);
    assert_eq!(p.header.kind, Type::Reply);
    assert_eq!(p.header.status, Status::Error);
    let mut r = Reader::new(p.body);
    let code = r.i32().unwrap();
    let from = r.i32().unwrap();
    assert!(r.optional().unwrap());
    (code, from, r.string(STRING_MAX).unwrap().to_string())
}

const DENIED: &str = "access denied: 'dromaius' denied access";

struct Session {
    filter: Filter,
    now: Instant,
}

impl Session {
    fn new(uri: &str) -> Session {
        Session {
            filter: Filter::new(uri),
            now: Instant::now(),
        }
    }

    fn client(&mut self, bytes: Vec<u8>, grants: &Fake) -> Result<Vec<Out>, End> {
        self.filter.from_client(bytes, grants, self.now)
    }

    fn daemon(&mut self, bytes: Vec<u8>, grants: &Fake) -> Result<Vec<Out>, End> {
        self.filter.from_daemon(bytes, grants, self.now)
    }

    /// Sends a call that must be forwarded as it is; returns the daemon's serial.
    fn forwarded(&mut self, bytes: Vec<u8>, grants: &Fake) -> u32 {
        let out = self.client(bytes, grants).expect("no end");
        let (d, c, _) = split(&out);
        assert_eq!((d.len(), c.len()), (1, 0), "{out:?}");
        parse(d[0]).header.serial
    }

    /// Teaches the filter the domains, as a listing of them would.
    fn learn(&mut self, doms: &[Domain], grants: &Fake) {
        let serial = self.forwarded(
            call(
                proc::CONNECT_LIST_ALL_DOMAINS,
                900,
                &body(|w| {
                    w.i32(1).u32(0);
                }),
            ),
            grants,
        );
        self.daemon(
            reply(
                proc::CONNECT_LIST_ALL_DOMAINS,
                serial,
                &list_all_reply(doms),
            ),
            grants,
        )
        .expect("a listing");
    }
}

#[test]
fn open_goes_to_the_gateways_uri_keeping_only_read_only() {
    let grants = alice();
    for (asked, flags, sent_flags) in [
        (Some("qemu+ssh://x/system?socket=/evil"), 0u32, 0u32),
        (None, 1, 1),
        (Some("test:///default"), 3, 1),
    ] {
        let mut s = Session::new("qemu:///system");
        let body = body(|w| {
            w.optional_string(asked).u32(flags);
        });
        let out = s
            .client(call(proc::CONNECT_OPEN, 1, &body), &grants)
            .unwrap();
        let (d, _, _) = split(&out);
        let sent = parse(d[0]);
        let mut r = Reader::new(sent.body);
        assert!(r.optional().unwrap());
        assert_eq!(r.string(100).unwrap(), "qemu:///system");
        assert_eq!(r.u32().unwrap(), sent_flags);
        assert_eq!(r.finish(), Ok(()));
    }
}

#[test]
fn everything_off_the_list_is_denied_by_the_filter_itself() {
    let grants = alice();
    let cases: &[(u32, u32, Type)] = &[
        (REMOTE_PROGRAM, 11, Type::Call), // DOMAIN_DEFINE_XML
        (REMOTE_PROGRAM, 35, Type::Call), // DOMAIN_UNDEFINE
        (REMOTE_PROGRAM, 31, Type::Call), // DOMAIN_SET_MEMORY
        (REMOTE_PROGRAM, 38, Type::Call), // CONNECT_LIST_NETWORKS
        (REMOTE_PROGRAM, 58, Type::Call), // DOMAIN_SET_SCHEDULER_PARAMETERS
        (REMOTE_PROGRAM, 99_999, Type::Call),
        (REMOTE_PROGRAM, 14, Type::CallWithFds),
        (QEMU_PROGRAM, 1, Type::Call),
        (LXC_PROGRAM, 1, Type::Call),
        (QEMU_PROGRAM, 1, Type::CallWithFds),
    ];
    for &(prog, number, kind) in cases {
        let mut s = Session::new("qemu:///system");
        let bytes = packet(prog, number, kind, 7, Status::Ok, &dom_body(&web1()));
        let out = s.client(bytes, &grants).unwrap();
        let (d, c, a) = split(&out);
        assert!(d.is_empty(), "{prog:#x} {number} forwarded");
        let (code, from, message) = error_of(c[0]);
        assert_eq!((code, from), (88, 55));
        assert_eq!(message, DENIED);
        assert_eq!(parse(c[0]).header.serial, 7);
        assert_eq!(parse(c[0]).header.prog, prog);
        assert!(!a[0].allowed);
    }
}

#[test]
fn what_is_not_libvirts_protocol_ends_the_connection() {
    let grants = alice();
    let mut garbage = call(3, 1, b"");
    garbage[16..20].copy_from_slice(&9u32.to_be_bytes());
    let cases: Vec<Vec<u8>> = vec![
        packet(0x1234_5678, 1, Type::Call, 1, Status::Ok, b""),
        packet(REMOTE_PROGRAM, 3, Type::Reply, 1, Status::Ok, b""),
        packet(REMOTE_PROGRAM, 3, Type::Message, 1, Status::Ok, b""),
        packet(REMOTE_PROGRAM, 211, Type::StreamHole, 1, Status::Ok, b""),
        packet(
            REMOTE_PROGRAM,
            211,
            Type::Stream,
            1,
            Status::Continue,
            b"data",
        ),
        packet(QEMU_PROGRAM, 1, Type::Stream, 1, Status::Ok, b""),
        packet(KEEPALIVE_PROGRAM, 3, Type::Message, 0, Status::Ok, b""),
        packet(KEEPALIVE_PROGRAM, 1, Type::Message, 0, Status::Ok, b"x"),
        call(3, 1, b"")[..20].to_vec(),
        garbage,
        vec![0x7f, 0xff, 0xff, 0xff],
        // A call whose body does not parse.
        call(proc::DOMAIN_LOOKUP_BY_NAME, 1, &[0, 0, 0, 9, b'a']),
        call(proc::DOMAIN_GET_XML_DESC, 1, &dom_body(&web1())),
    ];
    for bytes in cases {
        let mut s = Session::new("qemu:///system");
        assert!(s.client(bytes.clone(), &grants).is_err(), "{bytes:?}");
    }
    // Also a second version of the remote program.
    let mut s = Session::new("qemu:///system");
    let mut v2 = call(3, 1, b"");
    v2[8..12].copy_from_slice(&2u32.to_be_bytes());
    assert!(s.client(v2, &grants).is_err());
}

#[test]
fn keepalive_passes_both_ways() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    let ping = packet(KEEPALIVE_PROGRAM, 1, Type::Message, 0, Status::Ok, b"");
    let pong = packet(KEEPALIVE_PROGRAM, 2, Type::Message, 0, Status::Ok, b"");
    assert_eq!(
        s.daemon(ping.clone(), &grants).unwrap(),
        vec![Out::ToClient(ping.clone())]
    );
    assert_eq!(
        s.client(pong.clone(), &grants).unwrap(),
        vec![Out::ToDaemon(pong)]
    );
    assert_eq!(
        s.client(ping.clone(), &grants).unwrap(),
        vec![Out::ToDaemon(ping)]
    );
}

#[test]
fn a_listing_shows_only_visible_domains_and_counts_only_them() {
    let grants = alice();
    let all = [web1(), db1(), dom("web2", 3, -1)];
    for need_results in [1, 0] {
        let mut s = Session::new("qemu:///system");
        let args = body(|w| {
            w.i32(need_results).u32(0);
        });
        let out = s
            .client(call(proc::CONNECT_LIST_ALL_DOMAINS, 5, &args), &grants)
            .unwrap();
        let (d, _, _) = split(&out);
        let sent = parse(d[0]);
        assert_eq!(
            Reader::new(sent.body).i32(),
            Ok(1),
            "always asks for the domains"
        );
        let serial = sent.header.serial;
        let out = s
            .daemon(
                reply(
                    proc::CONNECT_LIST_ALL_DOMAINS,
                    serial,
                    &list_all_reply(&all),
                ),
                &grants,
            )
            .unwrap();
        let (_, c, _) = split(&out);
        let got = parse(c[0]);
        assert_eq!(got.header.serial, 5);
        let mut r = Reader::new(got.body);
        let count = r.u32().unwrap();
        let mut names = Vec::new();
        for _ in 0..count {
            names.push(Domain::read(&mut r).unwrap().name);
        }
        assert_eq!(r.u32(), Ok(2), "ret counts the visible domains");
        assert_eq!(r.finish(), Ok(()));
        if need_results == 1 {
            assert_eq!(names, ["web1", "web2"]);
        } else {
            assert!(names.is_empty());
        }
        // Every UUID was learnt from the answer, invisible ones too.
        assert_eq!(s.filter.learnt_name(&db1().uuid), Some("db1"));
    }
}

#[test]
fn old_listings_are_answered_from_a_list_all_sent_in_their_place() {
    let grants = alice();
    let running = [web1(), db1()];
    let off = [dom("web2", 3, -1), dom("db2", 4, -1)];
    // (procedure, its arguments, the list-all flags sent instead, the daemon's answer,
    // the reply the client gets)
    type Row<'a> = (u32, Vec<u8>, u32, &'a [Domain], Vec<u8>);
    let cases: &[Row] = &[
        (
            proc::CONNECT_NUM_OF_DOMAINS,
            vec![],
            1,
            &running,
            body(|w| {
                w.i32(1);
            }),
        ),
        (
            proc::CONNECT_LIST_DOMAINS,
            body(|w| {
                w.i32(10);
            }),
            1,
            &running,
            body(|w| {
                w.u32(1).i32(3);
            }),
        ),
        (
            proc::CONNECT_LIST_DOMAINS,
            body(|w| {
                w.i32(0);
            }),
            1,
            &running,
            body(|w| {
                w.u32(0);
            }),
        ),
        (
            proc::CONNECT_NUM_OF_DEFINED_DOMAINS,
            vec![],
            2,
            &off,
            body(|w| {
                w.i32(1);
            }),
        ),
        (
            proc::CONNECT_LIST_DEFINED_DOMAINS,
            body(|w| {
                w.i32(-1);
            }),
            2,
            &off,
            body(|w| {
                w.u32(0);
            }),
        ),
        (
            proc::CONNECT_LIST_DEFINED_DOMAINS,
            body(|w| {
                w.i32(5);
            }),
            2,
            &off,
            body(|w| {
                w.u32(1).string("web2");
            }),
        ),
    ];
    for (number, args, flags, answer, expected) in cases {
        let mut s = Session::new("qemu:///system");
        let out = s.client(call(*number, 8, args), &grants).unwrap();
        let (d, _, _) = split(&out);
        let sent = parse(d[0]);
        assert_eq!(sent.header.proc, proc::CONNECT_LIST_ALL_DOMAINS);
        let mut r = Reader::new(sent.body);
        assert_eq!((r.i32(), r.u32()), (Ok(1), Ok(*flags)));
        let out = s
            .daemon(
                reply(
                    proc::CONNECT_LIST_ALL_DOMAINS,
                    sent.header.serial,
                    &list_all_reply(answer),
                ),
                &grants,
            )
            .unwrap();
        let (_, c, _) = split(&out);
        let got = parse(c[0]);
        assert_eq!((got.header.proc, got.header.serial), (*number, 8));
        assert_eq!(got.body, &expected[..], "{number}");
    }
}

#[test]
fn an_invisible_domain_is_missing_whichever_way_it_is_looked_up() {
    let grants = alice();
    for (uri, by_name, by_uuid, by_id) in [
        (
            "qemu:///system",
            "Domain not found: no domain with matching name 'db1'",
            "Domain not found: no domain with matching uuid '02020202-0202-0202-0202-020202020202'",
            "Domain not found: no domain with matching id 4",
        ),
        (
            "test:///default",
            "Domain not found",
            "Domain not found",
            "Domain not found",
        ),
    ] {
        let from = if uri.starts_with("test") { 12 } else { 10 };
        let mut s = Session::new(uri);
        // By name: never forwarded.
        let args = body(|w| {
            w.string("db1");
        });
        let out = s
            .client(call(proc::DOMAIN_LOOKUP_BY_NAME, 1, &args), &grants)
            .unwrap();
        let (d, c, a) = split(&out);
        assert!(d.is_empty());
        assert_eq!(error_of(c[0]), (42, from, by_name.to_string()));
        assert!(!a[0].allowed);
        // By UUID and by id: forwarded, the answer replaced.
        for (number, args, message) in [
            (
                proc::DOMAIN_LOOKUP_BY_UUID,
                body(|w| {
                    w.opaque_fixed(&[2; 16]);
                }),
                by_uuid,
            ),
            (
                proc::DOMAIN_LOOKUP_BY_ID,
                body(|w| {
                    w.i32(4);
                }),
                by_id,
            ),
        ] {
            let serial = s.forwarded(call(number, 2, &args), &grants);
            let out = s
                .daemon(reply(number, serial, &dom_body(&db1())), &grants)
                .unwrap();
            let (_, c, _) = split(&out);
            let invisible = c[0].clone();
            assert_eq!(error_of(&invisible), (42, from, message.to_string()));
            // The daemon's own "no such domain" for a missing one: the same bytes.
            let serial = s.forwarded(call(number, 2, &args), &grants);
            let daemons = not_found(
                s.filter.driver,
                Some("no domain with matching uuid 'whatever the daemon says'"),
            );
            let out = s
                .daemon(error_reply(number, serial, &daemons), &grants)
                .unwrap();
            let (_, c, _) = split(&out);
            assert_eq!(c[0], &invisible, "{uri} {number}");
        }
        // By name of a visible domain: forwarded and passed on.
        let args = body(|w| {
            w.string("web1");
        });
        let serial = s.forwarded(call(proc::DOMAIN_LOOKUP_BY_NAME, 3, &args), &grants);
        let out = s
            .daemon(
                reply(proc::DOMAIN_LOOKUP_BY_NAME, serial, &dom_body(&web1())),
                &grants,
            )
            .unwrap();
        let (_, c, _) = split(&out);
        assert_eq!(parse(c[0]).body, &dom_body(&web1())[..]);
        assert_eq!(parse(c[0]).header.serial, 3);
    }
}

#[test]
fn a_domain_call_is_judged_by_its_uuid_never_by_its_name() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    s.learn(&[web1(), db1()], &grants);
    // web1's name with db1's UUID: db1 it is, and invisible.
    let forged = Domain {
        name: "web1".into(),
        ..db1()
    };
    for number in [proc::DOMAIN_CREATE, 16, proc::DOMAIN_SUSPEND] {
        let out = s
            .client(call(number, 4, &dom_body(&forged)), &grants)
            .unwrap();
        let (d, c, a) = split(&out);
        assert!(d.is_empty(), "{number} forwarded");
        let (code, _, message) = error_of(c[0]);
        assert_eq!(code, 42);
        assert_eq!(
            message,
            "Domain not found: no domain with matching uuid \
             '02020202-0202-0202-0202-020202020202' (web1)"
        );
        assert_eq!(a[0].domain.as_deref(), Some("db1"), "audited as what it is");
    }
    // A UUID never learnt: the same error shape, nothing forwarded.
    let unknown = dom("web1", 9, 1);
    let out = s.client(call(16, 5, &dom_body(&unknown)), &grants).unwrap();
    let (d, c, _) = split(&out);
    assert!(d.is_empty());
    assert_eq!(error_of(c[0]).0, 42);
}

#[test]
fn acting_waits_for_the_daemon_to_say_which_domain_the_uuid_is_now() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    s.learn(&[web1(), dom("web2", 3, -1)], &grants);
    // start web1 (granted): held, checked, forwarded under a fresh serial.
    let out = s
        .client(call(proc::DOMAIN_CREATE, 11, &dom_body(&web1())), &grants)
        .unwrap();
    let (d, c, a) = split(&out);
    assert!(c.is_empty() && a.is_empty());
    let check = parse(d[0]);
    assert_eq!(check.header.proc, proc::DOMAIN_LOOKUP_BY_UUID);
    assert_eq!(check.body, &[1u8; 16][..]);
    let out = s
        .daemon(
            reply(
                proc::DOMAIN_LOOKUP_BY_UUID,
                check.header.serial,
                &dom_body(&web1()),
            ),
            &grants,
        )
        .unwrap();
    let (d, c, a) = split(&out);
    assert!(c.is_empty());
    let sent = parse(d[0]);
    assert_eq!(sent.header.proc, proc::DOMAIN_CREATE);
    assert_ne!(sent.header.serial, check.header.serial);
    assert_eq!(
        a[0],
        &Call {
            procedure: "DOMAIN_CREATE".into(),
            action: Some(Action::Start),
            domain: Some("web1".into()),
            allowed: true,
        }
    );
    let out = s
        .daemon(reply(proc::DOMAIN_CREATE, sent.header.serial, b""), &grants)
        .unwrap();
    let (_, c, _) = split(&out);
    assert_eq!(parse(c[0]).header.serial, 11);

    // The UUID was renamed to something ungranted meanwhile: refused as missing.
    let out = s
        .client(call(proc::DOMAIN_CREATE, 12, &dom_body(&web1())), &grants)
        .unwrap();
    let (d, _, _) = split(&out);
    let serial = parse(d[0]).header.serial;
    let renamed = dom("secret", 1, 3);
    let out = s
        .daemon(
            reply(proc::DOMAIN_LOOKUP_BY_UUID, serial, &dom_body(&renamed)),
            &grants,
        )
        .unwrap();
    let (d, c, a) = split(&out);
    assert!(d.is_empty());
    assert_eq!(error_of(c[0]).0, 42);
    assert!(!a[0].allowed);

    // Visible but not granted that command: access denied, after the check.
    let web2 = dom("web2", 3, -1);
    let out = s
        .client(call(proc::DOMAIN_CREATE, 13, &dom_body(&web2)), &grants)
        .unwrap();
    let (d, _, _) = split(&out);
    let serial = parse(d[0]).header.serial;
    let out = s
        .daemon(
            reply(proc::DOMAIN_LOOKUP_BY_UUID, serial, &dom_body(&web2)),
            &grants,
        )
        .unwrap();
    let (d, c, a) = split(&out);
    assert!(d.is_empty());
    assert_eq!(error_of(c[0]).2, DENIED);
    assert_eq!(a[0].action, Some(Action::Start));

    // Undefined meanwhile: the daemon's no-domain becomes the usual error.
    let out = s
        .client(call(proc::DOMAIN_CREATE, 14, &dom_body(&web2)), &grants)
        .unwrap();
    let (d, _, _) = split(&out);
    let serial = parse(d[0]).header.serial;
    let gone = not_found(Driver::Qemu, Some("no domain with matching uuid 'x'"));
    let out = s
        .daemon(
            error_reply(proc::DOMAIN_LOOKUP_BY_UUID, serial, &gone),
            &grants,
        )
        .unwrap();
    let (_, c, _) = split(&out);
    assert_eq!(error_of(c[0]).0, 42);
    assert_eq!(s.filter.learnt_name(&web2.uuid), None);
}

#[test]
fn reads_use_a_fresh_name_and_check_a_stale_one_again() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    s.learn(&[web1()], &grants);
    let out = s.client(call(16, 20, &dom_body(&web1())), &grants).unwrap();
    let (d, _, _) = split(&out);
    assert_eq!(parse(d[0]).header.proc, 16, "fresh: forwarded at once");
    s.now += FRESH;
    let out = s.client(call(16, 21, &dom_body(&web1())), &grants).unwrap();
    let (d, _, _) = split(&out);
    assert_eq!(
        parse(d[0]).header.proc,
        proc::DOMAIN_LOOKUP_BY_UUID,
        "stale: checked"
    );
    // Revoked: the same fresh read is now refused as missing.
    let mut s = Session::new("qemu:///system");
    s.learn(&[web1()], &grants);
    let out = s
        .client(call(16, 20, &dom_body(&web1())), &nobody())
        .unwrap();
    let (d, c, _) = split(&out);
    assert!(d.is_empty());
    assert_eq!(error_of(c[0]).0, 42);
}

#[test]
fn flags_and_arguments_are_held_to_the_safe_set() {
    let grants = Fake {
        see: vec!["web1"],
        act: Action::ALL.iter().map(|a| (*a, "web1")).collect(),
    };
    let send_key = |codeset: u32, keys: &[u32]| {
        body(|w| {
            web1().write(w);
            w.u32(codeset).u32(0).u32(keys.len() as u32);
            for k in keys {
                w.u32(*k);
            }
            w.u32(0);
        })
    };
    let console = |flags: u32| {
        body(|w| {
            web1().write(w);
            w.optional_string(None).u32(flags);
        })
    };
    let screenshot = |flags: u32| {
        body(|w| {
            web1().write(w);
            w.u32(0).u32(flags);
        })
    };
    // (procedure, body, allowed)
    let cases: Vec<(u32, Vec<u8>, bool)> = vec![
        (proc::DOMAIN_CREATE_WITH_FLAGS, dom_flags(&web1(), 0), true),
        (proc::DOMAIN_CREATE_WITH_FLAGS, dom_flags(&web1(), 1), true),
        (proc::DOMAIN_CREATE_WITH_FLAGS, dom_flags(&web1(), 2), false),
        (
            proc::DOMAIN_CREATE_WITH_FLAGS,
            dom_flags(&web1(), 1 << 5),
            false,
        ),
        (proc::DOMAIN_SHUTDOWN_FLAGS, dom_flags(&web1(), 1), true),
        (proc::DOMAIN_SHUTDOWN_FLAGS, dom_flags(&web1(), 2), false),
        (proc::DOMAIN_REBOOT, dom_flags(&web1(), 0), true),
        (proc::DOMAIN_REBOOT, dom_flags(&web1(), 2), false),
        (proc::DOMAIN_RESET, dom_flags(&web1(), 0), true),
        (proc::DOMAIN_RESET, dom_flags(&web1(), 1), false),
        (proc::DOMAIN_DESTROY_FLAGS, dom_flags(&web1(), 1), true),
        (proc::DOMAIN_DESTROY_FLAGS, dom_flags(&web1(), 2), false),
        (proc::DOMAIN_SEND_KEY, send_key(0, &[29, 56, 111]), true),
        (proc::DOMAIN_SEND_KEY, send_key(0, &[111, 29, 56]), true),
        (proc::DOMAIN_SEND_KEY, send_key(0, &[29, 56]), false),
        (
            proc::DOMAIN_SEND_KEY,
            send_key(0, &[29, 56, 111, 111]),
            false,
        ),
        (proc::DOMAIN_SEND_KEY, send_key(0, &[29, 56, 62]), false),
        (proc::DOMAIN_SEND_KEY, send_key(1, &[29, 56, 111]), false),
        (proc::DOMAIN_SEND_KEY, send_key(0, &[]), false),
        (proc::DOMAIN_OPEN_CONSOLE, console(0), true),
        (proc::DOMAIN_OPEN_CONSOLE, console(2), true),
        (proc::DOMAIN_OPEN_CONSOLE, console(1), false),
        (proc::DOMAIN_OPEN_CONSOLE, console(3), false),
        (proc::DOMAIN_OPEN_CONSOLE, console(4), false),
        (proc::DOMAIN_SCREENSHOT, screenshot(0), true),
        (proc::DOMAIN_SCREENSHOT, screenshot(1), false),
        (proc::DOMAIN_GET_XML_DESC, dom_flags(&web1(), 1 << 3), false),
        (proc::DOMAIN_GET_XML_DESC, dom_flags(&web1(), 1 << 4), false),
    ];
    for (number, args, allowed) in cases {
        let mut s = Session::new("qemu:///system");
        s.learn(&[web1()], &grants);
        let out = s.client(call(number, 30, &args), &grants).unwrap();
        let (d, c, a) = split(&out);
        if allowed {
            assert_eq!(d.len(), 1, "{number} {args:?}");
        } else {
            assert!(d.is_empty(), "{number} {args:?} forwarded");
            assert_eq!(error_of(c[0]).2, DENIED, "{number}");
            assert!(!a[0].allowed);
        }
    }
}

#[test]
fn xml_is_never_asked_for_with_the_secure_flag() {
    let grants = alice();
    for (flags, sent) in [(1u32, 0u32), (3, 2), (2, 2), (0, 0), (5, 4)] {
        let mut s = Session::new("qemu:///system");
        s.learn(&[web1()], &grants);
        let out = s
            .client(
                call(proc::DOMAIN_GET_XML_DESC, 2, &dom_flags(&web1(), flags)),
                &grants,
            )
            .unwrap();
        let (d, _, _) = split(&out);
        let p = parse(d[0]);
        let mut r = Reader::new(p.body);
        Domain::read(&mut r).unwrap();
        assert_eq!(r.u32(), Ok(sent), "{flags}");
    }
}

/// Starts a screenshot of web1; returns the session and the daemon's serial.
fn screenshot_started() -> (Session, Fake, u32) {
    let grants = Fake {
        see: vec!["web1"],
        act: vec![(Action::Screenshot, "web1"), (Action::Console, "web1")],
    };
    let mut s = Session::new("qemu:///system");
    s.learn(&[web1()], &grants);
    let args = body(|w| {
        web1().write(w);
        w.u32(0).u32(0);
    });
    let out = s
        .client(call(proc::DOMAIN_SCREENSHOT, 40, &args), &grants)
        .unwrap();
    let (d, _, _) = split(&out);
    let check = parse(d[0]).header.serial;
    let out = s
        .daemon(
            reply(proc::DOMAIN_LOOKUP_BY_UUID, check, &dom_body(&web1())),
            &grants,
        )
        .unwrap();
    let (d, _, _) = split(&out);
    let serial = parse(d[0]).header.serial;
    (s, grants, serial)
}

fn stream(from_daemon: bool, serial: u32, status: Status, data: &[u8]) -> Vec<u8> {
    let _ = from_daemon;
    packet(
        REMOTE_PROGRAM,
        proc::DOMAIN_SCREENSHOT,
        Type::Stream,
        serial,
        status,
        data,
    )
}

#[test]
fn a_screenshot_stream_passes_to_the_client_and_nothing_else_does() {
    let (mut s, grants, serial) = screenshot_started();
    let mime = body(|w| {
        w.optional_string(Some("image/png"));
    });
    // Data may come before or after the reply.
    for bytes in [
        stream(true, serial, Status::Continue, b"PNG1"),
        reply(proc::DOMAIN_SCREENSHOT, serial, &mime),
        stream(true, serial, Status::Continue, b"PNG2"),
        stream(true, serial, Status::Ok, b""),
    ] {
        let out = s.daemon(bytes, &grants).unwrap();
        let (_, c, _) = split(&out);
        assert_eq!(parse(c[0]).header.serial, 40);
    }
    // The client finishes; the daemon confirms.
    let out = s
        .client(stream(false, 40, Status::Ok, b""), &grants)
        .unwrap();
    let (d, _, _) = split(&out);
    assert_eq!(parse(d[0]).header.serial, serial);
    let out = s
        .daemon(stream(true, serial, Status::Ok, b""), &grants)
        .unwrap();
    assert_eq!(split(&out).1.len(), 1);

    // Data from the client into a screenshot; a stream it never opened.
    let (mut s, grants, _) = screenshot_started();
    assert!(
        s.client(stream(false, 40, Status::Continue, b"x"), &grants)
            .is_err()
    );
    let (mut s, grants, serial) = screenshot_started();
    assert!(
        s.client(stream(false, 41, Status::Ok, b""), &grants)
            .is_err()
    );
    assert!(
        s.daemon(stream(true, serial + 100, Status::Continue, b"x"), &grants)
            .is_err()
    );
    // Another procedure on the same serial is another stream.
    let other = packet(
        REMOTE_PROGRAM,
        proc::DOMAIN_OPEN_CONSOLE,
        Type::Stream,
        40,
        Status::Continue,
        b"x",
    );
    assert!(s.client(other, &grants).is_err());
}

#[test]
fn a_failed_stream_call_closes_its_stream() {
    let (mut s, grants, serial) = screenshot_started();
    let error = not_found(Driver::Qemu, Some("x"));
    let out = s
        .daemon(
            error_reply(proc::DOMAIN_SCREENSHOT, serial, &error),
            &grants,
        )
        .unwrap();
    assert_eq!(parse(split(&out).1[0]).header.serial, 40);
    assert!(
        s.daemon(stream(true, serial, Status::Continue, b"x"), &grants)
            .is_err()
    );
}

#[test]
fn replies_and_events_are_matched_and_filtered() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    // A reply to nothing.
    assert!(s.daemon(reply(3, 77, b""), &grants).is_err());
    // A reply of another procedure than the call's.
    let serial = s.forwarded(call(3, 1, b""), &grants);
    assert!(s.daemon(reply(4, serial, b""), &grants).is_err());

    let mut s = Session::new("qemu:///system");
    let event = |d: &Domain| {
        packet(
            REMOTE_PROGRAM,
            318,
            Type::Message,
            0,
            Status::Ok,
            &body(|w| {
                w.i32(1);
                d.write(w);
                w.i32(2).i32(0);
            }),
        )
    };
    assert_eq!(
        split(&s.daemon(event(&web1()), &grants).unwrap()).1.len(),
        1
    );
    assert!(s.daemon(event(&db1()), &grants).unwrap().is_empty());
    assert!(
        s.daemon(event(&web1()), &nobody()).unwrap().is_empty(),
        "revoked"
    );
    assert_eq!(s.filter.learnt_name(&db1().uuid), Some("db1"));
    // pmsuspend's reason comes before its domain; an old-style event has it first.
    let pm = packet(
        REMOTE_PROGRAM,
        330,
        Type::Message,
        0,
        Status::Ok,
        &body(|w| {
            w.i32(1).i32(0);
            web1().write(w);
            w.i32(0);
        }),
    );
    assert_eq!(split(&s.daemon(pm, &grants).unwrap()).1.len(), 1);
    let old = packet(
        REMOTE_PROGRAM,
        107,
        Type::Message,
        0,
        Status::Ok,
        &body(|w| {
            db1().write(w);
            w.i32(0).i32(0);
        }),
    );
    assert!(s.daemon(old, &grants).unwrap().is_empty());
    // An event of no domain kind (a network's) is dropped.
    let net = packet(
        REMOTE_PROGRAM,
        315,
        Type::Message,
        0,
        Status::Ok,
        b"anything",
    );
    assert!(s.daemon(net, &grants).unwrap().is_empty());
}

#[test]
fn an_event_callback_for_one_domain_needs_it_visible() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    s.learn(&[web1(), db1()], &grants);
    let register = |d: Option<&Domain>| {
        body(|w| {
            w.i32(0);
            match d {
                Some(d) => {
                    w.bool(true);
                    d.write(w);
                }
                None => {
                    w.bool(false);
                }
            }
        })
    };
    let number = proc::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY;
    s.forwarded(call(number, 1, &register(None)), &grants);
    s.forwarded(call(number, 2, &register(Some(&web1()))), &grants);
    let out = s
        .client(call(number, 3, &register(Some(&db1()))), &grants)
        .unwrap();
    let (d, c, _) = split(&out);
    assert!(d.is_empty());
    assert_eq!(error_of(c[0]).0, 42);
}

#[test]
fn stats_carry_only_visible_records_and_named_domains_must_be_visible() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    let args = |doms: &[Domain]| {
        body(|w| {
            w.u32(doms.len() as u32);
            for d in doms {
                d.write(w);
            }
            w.u32(1).u32(0);
        })
    };
    let serial = s.forwarded(
        call(proc::CONNECT_GET_ALL_DOMAIN_STATS, 1, &args(&[])),
        &grants,
    );
    let record = |w: &mut Writer, d: &Domain| {
        d.write(w);
        w.u32(2);
        w.string("state.state").u32(1).i32(1);
        w.string("state.reason").u32(7).string("r");
    };
    let answer = body(|w| {
        w.u32(2);
        record(w, &db1());
        record(w, &web1());
    });
    let out = s
        .daemon(
            reply(proc::CONNECT_GET_ALL_DOMAIN_STATS, serial, &answer),
            &grants,
        )
        .unwrap();
    let (_, c, _) = split(&out);
    let expected = body(|w| {
        w.u32(1);
        record(w, &web1());
    });
    assert_eq!(parse(c[0]).body, &expected[..]);
    // Naming domains: each must be visible; a name learnt long ago still serves.
    s.now += FRESH * 10;
    s.forwarded(
        call(proc::CONNECT_GET_ALL_DOMAIN_STATS, 2, &args(&[web1()])),
        &grants,
    );
    let out = s
        .client(
            call(
                proc::CONNECT_GET_ALL_DOMAIN_STATS,
                3,
                &args(&[web1(), db1()]),
            ),
            &grants,
        )
        .unwrap();
    let (d, c, _) = split(&out);
    assert!(d.is_empty());
    assert_eq!(error_of(c[0]).0, 42);
}

#[test]
fn the_close_call_is_the_last_thing_the_client_sends() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    s.forwarded(call(proc::CONNECT_CLOSE, 9, b""), &grants);
    assert!(s.filter.is_closed());
    assert_eq!(s.client(call(3, 10, b""), &grants), Err(End::AfterClose));
}

#[test]
fn limits_end_the_connection_instead_of_growing() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    for serial in 0..MAX_OUTSTANDING as u32 {
        s.forwarded(call(3, serial, b""), &grants);
    }
    assert_eq!(
        s.client(call(3, 1000, b""), &grants),
        Err(End::Limit("outstanding calls"))
    );
    // A serial the client already has outstanding.
    let mut s = Session::new("qemu:///system");
    s.forwarded(call(3, 5, b""), &grants);
    assert!(s.client(call(3, 5, b""), &grants).is_err());
    // Held calls.
    let mut s = Session::new("qemu:///system");
    s.learn(&[web1()], &grants);
    for serial in 0..MAX_HELD as u32 {
        s.forwarded(
            call(proc::DOMAIN_CREATE, serial, &dom_body(&web1())),
            &grants,
        );
    }
    assert_eq!(
        s.client(call(proc::DOMAIN_CREATE, 99, &dom_body(&web1())), &grants),
        Err(End::Limit("held calls"))
    );
}

#[test]
fn serials_on_the_daemons_side_are_the_filters_own() {
    let grants = alice();
    let mut s = Session::new("qemu:///system");
    let a = s.forwarded(call(3, 1, b""), &grants);
    let b = s.forwarded(call(4, 1_000_000, b""), &grants);
    assert_ne!(a, b);
    let out = s.daemon(reply(4, b, b"v"), &grants).unwrap();
    assert_eq!(parse(split(&out).1[0]).header.serial, 1_000_000);
    let out = s.daemon(reply(3, a, b"t"), &grants).unwrap();
    assert_eq!(parse(split(&out).1[0]).header.serial, 1);
}
