//! The adversarial corpus: several hundred hostile requests, each run twice — against the
//! pure parser and policy (the library, in microseconds), and against the built binary as
//! sshd would run it as a forced command, on the real libvirtd of the rig, under strace,
//! with a hostile caller environment. A representative subset also goes through real sshd.
//!
//! After every end-to-end case: the exit status is the contract's and the one the pure
//! judgement predicts; nothing panicked; everything printed is escaped; exactly one escaped
//! audit record per request was written, with the predicted decision; the only program run
//! was the configured virsh, with the fixed environment and an argv of the expected shape
//! acting only on a domain granted for that command; no process was left behind; and no
//! domain outside the key's grants changed state.

use dromaius_rig as common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::direct::{Exec, HostileEnv, Invocation, check_record, dropped_in, still_running};
use common::{AuditSink, Rig, dromaius_bin, write_file};
use dromaius::action::Action;
use dromaius::config::{self, Config};
use dromaius::lookup;
use dromaius::policy::{self, Decision, Judgement, Subject};
use dromaius::request::{self, MAX_REQUEST_BYTES, Verb};

/// The grants every case is judged against. `URI` and `SINK` are filled in per world.
const KEYS: &str = r#"{
    "alice": [
      { "domains": ["web1", "web2"], "commands": ["start", "shutdown", "reboot", "reset", "destroy", "status"] },
      { "domains": ["lab-?"], "commands": ["status"] },
      { "domains": ["2"], "commands": ["status"] },
      { "domains": ["web1", "web2"], "commands": ["suspend", "resume", "ctrl-alt-del", "screenshot", "display"] }
    ],
    "solo": [ { "domains": ["web1"], "commands": ["status"] } ]
  }"#;

/// Granted to alice (and defined, shut off).
const GRANTED: [&str; 4] = ["web1", "web2", "lab-1", "2"];
/// Defined and running, granted to nobody: they must stay running whatever is sent.
const VICTIMS: [&str; 6] = ["victim", "web10", "Web1", "lab-10", "web1;", "--force"];

/// What one request line should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Could not be parsed: 2, `decision=invalid`.
    Invalid,
    /// Not granted (or unknown key): 77, `decision=deny`.
    Deny,
    /// Granted: virsh runs (0 or 1), or list/help/exit (0); `decision=allow`.
    Allow,
}

enum Source {
    /// `SSH_ORIGINAL_COMMAND`.
    Command(Vec<u8>),
    /// Lines on stdin (SSH_ORIGINAL_COMMAND unset).
    Stdin(Vec<u8>),
}

struct Case {
    label: String,
    key: &'static str,
    source: Source,
    /// One entry per request that is audited, in order (blank lines ask nothing).
    wants: Vec<Want>,
    /// What stdout must be, where it matters.
    stdout: Option<&'static str>,
}

/// UUIDs the table needs: real ones end to end, made-up ones for the pure run.
struct Uuids {
    victim: String,
    web1: String,
}

fn cmd(label: impl Into<String>, line: impl AsRef<[u8]>, want: Want) -> Case {
    Case {
        label: label.into(),
        key: "alice",
        source: Source::Command(line.as_ref().to_vec()),
        wants: vec![want],
        stdout: None,
    }
}

fn stdin(label: impl Into<String>, input: impl AsRef<[u8]>, wants: Vec<Want>) -> Case {
    Case {
        label: label.into(),
        key: "alice",
        source: Source::Stdin(input.as_ref().to_vec()),
        wants,
        stdout: None,
    }
}

fn as_key(mut case: Case, key: &'static str) -> Case {
    case.key = key;
    case
}

/// The corpus. Every row says what it expects; the pure test checks those expectations
/// against the library, the end-to-end test against the binary.
fn corpus(uuids: &Uuids) -> Vec<Case> {
    use Want::*;
    let mut cases = Vec::new();

    // Shell separators, substitutions, redirections and quoting of every kind: never
    // interpreted, only ever part of a word.
    let separators = [
        ";", "|", "&", "&&", "||", "`", "$(", ")", "$((", "))", ">", "<", ">>", "<<", "<<<",
        "2>&1", ">&", "|&", "'", "\"", "\\", "$", "${IFS}", "$IFS", "!", "#", "~", "{", "}", "(",
        "*", "?", "[", "]", "=", "^", "%", "@", ",", ":", "'\"'\"'", "\\;", "$'\\x3b'", "%0a",
        "%3B", "&#59;", "\\n", ";;", "&>", "<(", ">(", "$[", "#!", "\\\\",
    ];
    for s in separators {
        cases.push(cmd(
            format!("separator {s} chains a second command"),
            format!("start web1{s}destroy victim"),
            Invalid,
        ));
        cases.push(cmd(
            format!("separator {s} after the domain"),
            format!("start web1{s}"),
            Deny,
        ));
        cases.push(cmd(
            format!("separator {s} before the command"),
            format!("{s}start web1"),
            Invalid,
        ));
        cases.push(cmd(
            format!("separator {s} before the domain"),
            format!("status {s}web1"),
            Deny,
        ));
        cases.push(cmd(
            format!("separator {s} glued to the command"),
            format!("start{s}web1"),
            Invalid,
        ));
    }
    for (line, want) in [
        ("start 'web1'", Deny),
        ("start \"web1\"", Deny),
        ("start w'e'b1", Deny),
        ("start w\"e\"b1", Deny),
        ("start web\\1", Deny),
        ("start $'web1'", Deny),
        ("start ''", Deny),
        ("start \"\"", Deny),
        ("'start' web1", Invalid),
        ("\"start\" web1", Invalid),
        ("start web1 ''", Invalid),
        ("start \"web1 victim\"", Invalid),
        ("start 'web1 ; destroy victim'", Invalid),
        ("start $(echo web1)", Invalid),
        ("start `echo web1`", Invalid),
        ("start web1 && destroy victim", Invalid),
        ("start web1 ; destroy victim", Invalid),
        ("start web1 | sh", Invalid),
        ("start web1 > /tmp/x", Invalid),
        ("start $HOME", Deny),
        ("start ${PATH}", Deny),
        ("start $(id)", Deny),
        ("start `id`", Deny),
    ] {
        cases.push(cmd(format!("quoting {line:?}"), line, want));
    }

    // Control characters, in the command (SSH_ORIGINAL_COMMAND) and on stdin.
    let controls = [
        "\n", "\r", "\x1b", "\x7f", "\x08", "\x07", "\x0b", "\x0c", "\x01", "\x1f", "\u{85}",
        "\u{9b}",
    ];
    for c in controls {
        let shown = c.escape_debug();
        cases.push(cmd(
            format!("control {shown} after the domain"),
            format!("status web1{c}"),
            Invalid,
        ));
        cases.push(cmd(
            format!("control {shown} before the command"),
            format!("{c}status web1"),
            Invalid,
        ));
        cases.push(cmd(
            format!("control {shown} then a second command"),
            format!("status web1{c}destroy victim"),
            Invalid,
        ));
        if c != "\n" {
            cases.push(stdin(
                format!("control {shown} on a stdin line"),
                format!("status web1{c}\n"),
                vec![Invalid],
            ));
        }
    }
    cases.push(stdin("CR LF line end", "status web1\r\n", vec![Invalid]));
    cases.push(stdin(
        "NUL after the domain",
        b"status web1\0\n",
        vec![Invalid],
    ));
    cases.push(stdin("NUL alone", b"\0", vec![Invalid]));
    cases.push(stdin(
        "NUL inside the command",
        b"sta\0rt web1\n",
        vec![Invalid],
    ));
    cases.push(stdin(
        "NUL line after a good one",
        b"status web1\n\0\n",
        vec![Allow, Invalid],
    ));
    cases.push(stdin(
        "NUL-separated second command",
        b"status web1\0destroy victim\n",
        vec![Invalid],
    ));
    cases.push(stdin("DEL line", b"\x7f\x7f\x7f\n", vec![Invalid]));
    cases.push(stdin(
        "backspaces that would hide the command",
        b"destroy victim\x08\x08\x08\x08\x08\x08web1\n",
        vec![Invalid],
    ));
    cases.push(stdin(
        "a bare CR between two requests",
        b"status web1\rdestroy victim\n",
        vec![Invalid],
    ));

    // Bytes that are not UTF-8, on stdin and in the command.
    let not_utf8: [&[u8]; 9] = [
        b"\xff",
        b"\xfe",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\xc3",
        b"\xe2\x80",
    ];
    for bad in not_utf8 {
        let shown = hex(bad);
        for (place, line) in [
            (
                "after the domain",
                [b"status web1".as_slice(), bad].concat(),
            ),
            (
                "before the command",
                [bad, b"status web1".as_slice()].concat(),
            ),
            ("as the domain", [b"status ".as_slice(), bad].concat()),
        ] {
            cases.push(cmd(format!("not UTF-8 {shown} {place}"), &line, Invalid));
            let mut input = line.clone();
            input.push(b'\n');
            cases.push(stdin(
                format!("not UTF-8 {shown} {place}, on stdin"),
                input,
                vec![Invalid],
            ));
        }
    }

    // Options in every position: there are none, a leading dash is part of a name.
    let options = [
        "--domain",
        "--connect",
        "--force",
        "--console",
        "-c",
        "--",
        "--readonly",
        "-r",
        "--connect=test:///default",
        "-c=test:///default",
        "--domain=victim",
        "--help",
        "-h",
        "--version",
        "-V",
        "-d",
        "-l",
        "--escape",
        "-k",
        "-t",
        "--safe",
        "-",
    ];
    for o in options {
        cases.push(cmd(format!("option {o} alone"), o, Invalid));
        cases.push(cmd(
            format!("option {o} as the domain"),
            format!("destroy {o}"),
            Deny,
        ));
        cases.push(cmd(
            format!("option {o} before the command"),
            format!("{o} start web1"),
            Invalid,
        ));
        cases.push(cmd(
            format!("option {o} after the domain"),
            format!("start web1 {o}"),
            Invalid,
        ));
        cases.push(cmd(
            format!("option {o} between command and domain"),
            format!("destroy {o} victim"),
            Invalid,
        ));
    }

    // virsh verbs that are not dromaius commands.
    let verbs = [
        "define",
        "undefine",
        "edit",
        "dumpxml",
        "dominfo",
        "domstate",
        "domid",
        "domuuid",
        "domname",
        "migrate",
        "save",
        "restore",
        "managedsave",
        "snapshot-create-as",
        "qemu-monitor-command",
        "qemu-agent-command",
        "send-key",
        "setmem",
        "setvcpus",
        "attach-device",
        "detach-device",
        "connect",
        "cd",
        "echo",
        "pwd",
        "net-destroy",
        "pool-destroy",
        "nodedev-detach",
        "shell",
        "sh",
        "bash",
        "exec",
        "eval",
        "autostart",
        "create",
        "vncdisplay",
        "domdisplay",
        "event",
        "version",
        "uri",
        "hostname",
        "sysinfo",
        "virsh",
        "dromaius",
        "sudo",
    ];
    for v in verbs {
        cases.push(cmd(
            format!("verb {v} on a granted domain"),
            format!("{v} web1"),
            Invalid,
        ));
        cases.push(cmd(format!("verb {v} alone"), v, Invalid));
    }

    // Globs and paths in the request are names, compared literally.
    for domain in [
        "*",
        "?",
        "[wv]eb1",
        "web[0-9]",
        "web?",
        "web*",
        "w*1",
        "../web1",
        "/web1",
        "./web1",
        "web1/",
        "web1/..",
        "/etc/passwd",
        "~/web1",
        "~root",
        "web1/../victim",
        "{web1,victim}",
        "web{1,2}",
        "\\*",
        "lab-1/..",
    ] {
        cases.push(cmd(
            format!("glob or path {domain}"),
            format!("destroy {domain}"),
            Deny,
        ));
    }
    for (line, want) in [
        // The grant `lab-?` is a pattern; what the user types never is.
        ("status lab-1", Allow),
        ("status lab-?", Allow),
        ("status lab-*", Allow),
        ("status lab-10", Deny),
        ("status lab-", Deny),
        ("status lab-[1]", Deny),
        ("status lab-1*", Deny),
        ("start lab-1", Deny),
        ("destroy lab-?", Deny),
    ] {
        cases.push(cmd(format!("grant pattern {line}"), line, want));
    }

    // Case variants: commands are lower case, names are compared exactly.
    for (line, want) in [
        ("START web1", Invalid),
        ("Start web1", Invalid),
        ("sTART web1", Invalid),
        ("STATUS web1", Invalid),
        ("List", Invalid),
        ("LIST", Invalid),
        ("Help", Invalid),
        ("HELP", Invalid),
        ("Exit", Invalid),
        ("QUIT", Invalid),
        ("start WEB1", Deny),
        ("destroy Web1", Deny),
        ("status WEB1", Deny),
        ("status wEB1", Deny),
    ] {
        cases.push(cmd(format!("case {line}"), line, want));
    }

    // Unicode look-alikes: other letters that look the same are other words.
    for (line, want) in [
        ("\u{455}tart web1", Invalid),
        ("st\u{430}rt web1", Invalid),
        ("\u{ff53}\u{ff54}\u{ff41}\u{ff52}\u{ff54} web1", Invalid),
        ("st\u{0251}tus web1", Invalid),
        ("status w\u{435}b1", Deny),
        ("status web\u{ff11}", Deny),
        ("status \u{3c9}eb1", Deny),
        ("status web1\u{301}", Deny),
        ("status \u{24e6}eb1", Deny),
        ("status \u{1d430}eb1", Deny),
        ("status web\u{661}", Deny),
        ("status vict\u{131}m", Deny),
        ("destroy v\u{456}ctim", Deny),
    ] {
        cases.push(cmd(
            format!("look-alike {}", line.escape_unicode()),
            line,
            want,
        ));
    }
    // Zero-width, invisible and direction-changing characters: refused wherever they are.
    for z in [
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{2060}',
        '\u{feff}',
        '\u{ad}',
        '\u{34f}',
        '\u{180e}',
        '\u{61c}',
        '\u{200e}',
        '\u{200f}',
        '\u{202a}',
        '\u{202b}',
        '\u{202c}',
        '\u{202d}',
        '\u{202e}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}',
        '\u{fe0f}',
        '\u{e0041}',
        '\u{115f}',
        '\u{3164}',
    ] {
        let shown = z.escape_unicode();
        cases.push(cmd(
            format!("invisible {shown} in the domain"),
            format!("status web{z}1"),
            Invalid,
        ));
        cases.push(cmd(
            format!("invisible {shown} after the command"),
            format!("status{z} web1"),
            Invalid,
        ));
    }
    // Spaces that are not the ASCII space or tab.
    for sp in [
        '\u{a0}', '\u{1680}', '\u{2000}', '\u{2002}', '\u{2003}', '\u{2007}', '\u{2009}',
        '\u{200a}', '\u{202f}', '\u{205f}', '\u{3000}', '\u{2028}', '\u{2029}', '\u{85}',
    ] {
        cases.push(cmd(
            format!("non-ASCII space {}", sp.escape_unicode()),
            format!("status{sp}web1"),
            Invalid,
        ));
    }
    // Tab is a separator like space.
    cases.push(cmd("tab separates", "status\tweb1", Allow));
    cases.push(cmd(
        "tabs and spaces around",
        " \t status \t web1 \t ",
        Allow,
    ));

    // Numeric ids: a domain named 2 is granted; ids and their spellings are not.
    for (line, want) in [
        ("status 1", Deny),
        ("status +1", Deny),
        ("status 01", Deny),
        ("status 001", Deny),
        ("status  1", Deny),
        ("status +2", Deny),
        ("status 02", Deny),
        ("status 2.0", Deny),
        ("status 0x2", Deny),
        ("status -2", Deny),
        ("status 2e0", Deny),
        ("status \u{ff12}", Deny),
        ("destroy 1", Deny),
        ("destroy 2", Deny),
        ("status 2 ", Allow),
        ("status \t2", Allow),
    ] {
        cases.push(cmd(format!("numeric {line:?}"), line, want));
    }
    cases.push(Case {
        stdout: Some("shut off\n"),
        ..cmd("a domain named 2 is itself, not id 2", "status 2", Allow)
    });

    // UUIDs, in every spelling: a UUID is not a name anybody was granted.
    let victim = &uuids.victim;
    let bare = victim.replace('-', "");
    for (label, domain) in [
        ("victim's UUID", victim.clone()),
        ("victim's UUID, upper case", victim.to_uppercase()),
        ("victim's UUID without dashes", bare.clone()),
        ("victim's UUID without dashes, upper", bare.to_uppercase()),
        ("victim's UUID in braces", format!("{{{victim}}}")),
        ("victim's UUID as a URN", format!("urn:uuid:{victim}")),
        ("the granted web1's own UUID", uuids.web1.clone()),
        ("web1's UUID, upper case", uuids.web1.to_uppercase()),
    ] {
        cases.push(cmd(
            format!("{label}: destroy"),
            format!("destroy {domain}"),
            Deny,
        ));
        cases.push(cmd(
            format!("{label}: status"),
            format!("status {domain}"),
            Deny,
        ));
    }

    // Sizes: 0 bytes, the limit, one over, 100 KiB; stdin lines of MiBs without a newline.
    let at_limit = |prefix: &str, fill: u8, len: usize| {
        let mut line = prefix.as_bytes().to_vec();
        line.resize(len, fill);
        line
    };
    cases.push(Case {
        wants: vec![],
        ..cmd("an empty command is a session with no input", "", Allow)
    });
    cases.push(Case {
        wants: vec![],
        ..cmd("a blank command is a session with no input", " \t ", Allow)
    });
    cases.push(cmd(
        "exactly 4096 bytes",
        at_limit("status ", b'a', MAX_REQUEST_BYTES),
        Deny,
    ));
    cases.push(cmd(
        "4096 bytes, padded with spaces",
        at_limit("status web1", b' ', MAX_REQUEST_BYTES),
        Allow,
    ));
    cases.push(cmd(
        "4 KiB + 1",
        at_limit("status ", b'a', MAX_REQUEST_BYTES + 1),
        Invalid,
    ));
    cases.push(cmd(
        "4 KiB + 1 of spaces after a granted request",
        at_limit("status web1", b' ', MAX_REQUEST_BYTES + 1),
        Invalid,
    ));
    cases.push(cmd(
        "100 KiB",
        at_limit("status ", b'a', 100 * 1024),
        Invalid,
    ));
    cases.push(stdin("an empty stdin", "", vec![]));
    cases.push(stdin("only blank lines", "\n\n \n\t\n", vec![]));
    let mut line = at_limit("status ", b'a', MAX_REQUEST_BYTES + 1);
    line.push(b'\n');
    cases.push(stdin("a stdin line of 4 KiB + 1", &line, vec![Invalid]));
    let mut line = at_limit("status ", b'a', 100 * 1024);
    line.push(b'\n');
    cases.push(stdin("a stdin line of 100 KiB", &line, vec![Invalid]));
    cases.push(stdin(
        "3 MiB without a newline",
        at_limit("", b'x', 3 << 20),
        vec![Invalid],
    ));
    cases.push(stdin(
        "8 MiB without a newline",
        at_limit("status web1", b' ', 8 << 20),
        vec![Invalid],
    ));
    let mut input = at_limit("", b'y', 3 << 20);
    input.extend_from_slice(b"\nstatus web1\n");
    cases.push(stdin(
        "a request after a 3 MiB line",
        input,
        vec![Invalid, Allow],
    ));

    // Thousands of lines, and input after exit.
    let mut many = Vec::new();
    let mut wants = Vec::new();
    let pattern: [(&[u8], Want); 5] = [
        (b"status nope", Deny),
        (b"bogus", Invalid),
        (b"help", Allow),
        (b"destroy victim", Deny),
        (b"st\xffatus", Invalid),
    ];
    for i in 0..2500 {
        let (line, want) = pattern[i % pattern.len()];
        many.extend_from_slice(line);
        many.push(b'\n');
        wants.push(want);
    }
    cases.push(stdin("2500 lines, every one audited", many, wants));
    cases.push(stdin(
        "3000 denied lines",
        "destroy victim\n".repeat(3000),
        vec![Deny; 3000],
    ));
    cases.push(stdin(
        "nothing after exit runs",
        "status web1\nexit\ndestroy victim\ndestroy web1\n",
        vec![Allow, Allow],
    ));
    cases.push(stdin(
        "nothing after quit runs",
        "quit\nstart web1",
        vec![Allow],
    ));
    let mut input = b"exit\n".to_vec();
    input.extend(std::iter::repeat_n(b'z', 1 << 20));
    cases.push(stdin(
        "a MiB after exit is not read as requests",
        input,
        vec![Allow],
    ));
    cases.push(stdin(
        "exit with an argument is not exit",
        "exit now\nstatus web1\n",
        vec![Invalid, Allow],
    ));
    cases.push(stdin(
        "exit in a command word is not exit",
        "exit;destroy victim\nquit\n",
        vec![Invalid, Allow],
    ));

    // Terminal escape sequences meant to repaint the screen or forge a log line.
    for (label, line, on_stdin) in [
        ("set the window title", "\x1b]0;pwned\x07", vec![Invalid]),
        ("clear the screen", "\x1b[2J\x1b[H", vec![Invalid]),
        ("colour the prompt", "\x1b[31mstatus web1", vec![Invalid]),
        (
            "erase the line above",
            "status web1\x1b[1A\x1b[2K",
            vec![Invalid],
        ),
        ("C1 CSI", "\u{9b}2Jstatus web1", vec![Invalid]),
        ("DCS string", "\x1bPq#0;2;0;0;0\x1b\\", vec![Invalid]),
        (
            "clipboard write",
            "\x1b]52;c;ZWNobyBwd25lZA==\x07",
            vec![Invalid],
        ),
        (
            "hyperlink",
            "\x1b]8;;http://x/\x07web1\x1b]8;;\x07",
            vec![Invalid],
        ),
        (
            "a forged syslog line",
            "status x\ndromaius[1]: key=\"root\" command=\"destroy\" decision=allow outcome=0",
            vec![Deny, Invalid],
        ),
        ("a forged field", "status web1\"decision=allow", vec![Deny]),
        (
            "a forged field with spaces",
            "status web1\" decision=allow outcome=0",
            vec![Invalid],
        ),
    ] {
        let want = if on_stdin.len() == 1 {
            on_stdin[0]
        } else {
            Invalid
        };
        cases.push(cmd(format!("escape: {label}"), line, want));
        cases.push(stdin(
            format!("escape: {label}, on stdin"),
            format!("{line}\n"),
            on_stdin,
        ));
    }

    // Requests that are granted, including ones that change state.
    for line in [
        "status web1",
        "start web1",
        "status  web1",
        "reboot web1",
        "reset web1",
        "shutdown web1",
        "destroy web1",
        "start  web2",
        "destroy\tweb2",
        "list",
        "help",
        "exit",
        "quit",
    ] {
        cases.push(cmd(format!("granted {line:?}"), line, Allow));
    }
    // The commands past the power button: granted by name, and as hostile as the rest.
    for line in [
        "suspend web1",
        "resume web1",
        "ctrl-alt-del web1",
        "screenshot web1",
        "display web1",
        "suspend\tweb2",
    ] {
        cases.push(cmd(format!("granted {line:?}"), line, Allow));
    }
    for (line, want) in [
        ("display --force", Deny),
        ("display victim", Deny),
        ("screenshot victim", Deny),
        ("ctrl-alt-del victim", Deny),
        ("suspend victim", Deny),
        ("resume victim", Deny),
        ("suspend 2", Deny),
        ("display 2", Deny),
        ("screenshot +2", Deny),
        ("display 007", Deny),
        ("ctrl-alt-del -0", Deny),
        ("suspend web*", Deny),
        ("display web?", Deny),
        ("screenshot web[12]", Deny),
        ("screenshot ../../etc/passwd", Deny),
        ("screenshot /etc/shadow", Deny),
        ("display --connect", Deny),
        ("screenshot web1 --file /etc/passwd", Invalid),
        ("screenshot web1 /etc/passwd", Invalid),
        ("display web1 --include-password", Invalid),
        ("display web1 --type spice", Invalid),
        ("ctrl-alt-del web1 KEY_A", Invalid),
        ("send-key web1 KEY_LEFTCTRL", Invalid),
        ("domdisplay web1", Invalid),
        ("vncdisplay web1", Invalid),
        ("Display web1", Invalid),
        ("ctrl-alt-delete web1", Invalid),
        ("ctrl alt del web1", Invalid),
        ("ctrl-alt-del", Invalid),
        ("screenshot", Invalid),
        ("display", Invalid),
        ("suspend;display web1", Invalid),
        ("display web1;destroy victim", Invalid),
        ("display web1;destroy", Deny),
    ] {
        cases.push(cmd(format!("past the power button {line:?}"), line, want));
    }
    for (line, want) in [("display", Deny), ("screenshot web1", Deny)] {
        cases.push(as_key(
            cmd(format!("one-domain key, not granted: {line}"), line, want),
            "solo",
        ));
    }
    cases.push(stdin(
        "display in a piped session is refused after the judgement",
        "display web1\nstatus web1\n",
        vec![Allow, Allow],
    ));

    for (line, want) in [
        ("list web1", Invalid),
        ("help start", Invalid),
        ("console web1", Deny),
        ("start", Invalid),
        ("status", Invalid),
        ("status nope", Deny),
    ] {
        cases.push(cmd(format!("grammar {line:?}"), line, want));
    }

    // A key the config does not name gets nothing but exit; a key with one name may
    // leave it out, and only for what it was granted.
    for (line, want) in [
        ("status web1", Deny),
        ("list", Deny),
        ("help", Deny),
        ("exit", Allow),
        ("destroy victim", Deny),
        ("bogus", Invalid),
    ] {
        cases.push(as_key(
            cmd(format!("unknown key: {line}"), line, want),
            "mallory",
        ));
    }
    for (line, want) in [
        ("status", Allow),
        ("start", Deny),
        ("status web1", Allow),
        ("status web2", Deny),
        ("destroy", Deny),
    ] {
        cases.push(as_key(
            cmd(format!("one-domain key: {line}"), line, want),
            "solo",
        ));
    }
    cases
}

/// The library's judgement of one line: the very function the gateway acts on.
fn judge(config: &Config, key: &str, line: &[u8]) -> Option<Want> {
    let subject = Subject::new(config, key, None);
    // Whether an allowed action fits the channel is not the corpus's question.
    let channel = policy::Channel {
        stdin_is_terminal: false,
        stdout_is_terminal: false,
        one_shot: true,
    };
    Some(match policy::judge_line(&subject, line, channel)? {
        Judgement::Invalid(_) => Want::Invalid,
        Judgement::Denied { .. } => Want::Deny,
        Judgement::Session(_) | Judgement::Allowed(_) => Want::Allow,
    })
}

/// The library's judgement of a whole case: one entry per audited request.
fn judge_case(config: &Config, case: &Case) -> Vec<Want> {
    let lines: Vec<&[u8]> = match &case.source {
        Source::Command(line) if !line.iter().all(|b| matches!(b, b' ' | b'\t')) => {
            vec![line.as_slice()]
        }
        Source::Command(_) => vec![],
        Source::Stdin(input) => {
            let mut lines: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
            if input.ends_with(b"\n") || input.is_empty() {
                lines.pop();
            }
            lines
        }
    };
    let mut wants = Vec::new();
    for line in lines {
        let want = if line.len() > MAX_REQUEST_BYTES {
            Some(Want::Invalid)
        } else {
            judge(config, case.key, line)
        };
        if let Some(want) = want {
            wants.push(want);
            let exits = matches!(
                request::parse(line),
                Ok(Some(r)) if r.verb == Verb::Exit
            );
            if exits {
                break;
            }
        }
    }
    wants
}

fn config_text(uri: &str, sink: &Path) -> String {
    format!(
        r#"{{"virsh": "/usr/bin/virsh", "connect": "{uri}", "syslog_socket": "{}", "timeout_secs": 30, "keys": {KEYS}}}"#,
        sink.display()
    )
}

#[test]
fn the_corpus_is_large_and_every_expectation_matches_the_pure_judgement() {
    let config = config::parse(
        &config_text("test:///default", Path::new("/dev/log")),
        Path::new("corpus.json"),
    )
    .unwrap();
    let uuids = Uuids {
        victim: "6695eb01-f6a4-8304-79aa-97f2502e193f".into(),
        web1: "1c26ef96-2259-4182-8a59-ac38b2b550c3".into(),
    };
    let cases = corpus(&uuids);
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let judged = judge_case(&config, case);
        if judged != case.wants {
            let shown: Vec<Want> = judged.iter().take(8).copied().collect();
            wrong.push(format!("{}: judged {shown:?}", case.label));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let labels: std::collections::HashSet<&str> = cases.iter().map(|c| c.label.as_str()).collect();
    eprintln!(
        "corpus: {} cases, {} distinct labels",
        cases.len(),
        labels.len()
    );
}

/// The states of every domain on the rig, by name.
fn snapshot(rig: &Rig) -> BTreeMap<String, String> {
    let out = rig.virsh_ok(&["domstats", "--state"]);
    let mut states = BTreeMap::new();
    let mut current = None;
    for line in out.lines() {
        if let Some(name) = line
            .strip_prefix("Domain: '")
            .and_then(|rest| rest.strip_suffix('\''))
        {
            current = Some(name.to_owned());
        } else if let Some(code) = line.trim().strip_prefix("state.state=") {
            if let Some(name) = current.take() {
                states.insert(name, code.to_owned());
            }
        }
    }
    states
}

/// The world the end-to-end half runs in: domains defined once, a config, an audit sink.
struct World {
    rig: &'static Rig,
    audit: AuditSink,
    config_path: PathBuf,
    config: Config,
    uuids: BTreeMap<String, String>,
}

fn world() -> &'static World {
    static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    WORLD.get_or_init(|| {
        let rig = Rig::get();
        for name in GRANTED.iter().chain(&VICTIMS) {
            rig.define(name);
        }
        for name in VICTIMS {
            rig.start(name);
        }
        let audit = AuditSink::new();
        let text = config_text(&rig.test_uri(), audit.path());
        let config_path = write_file("corpus.json", &text);
        let config = config::parse(&text, &config_path).unwrap();
        let uuids = rig.domains().into_iter().map(|(u, n)| (n, u)).collect();
        World {
            rig,
            audit,
            config_path,
            config,
            uuids,
        }
    })
}

/// The argv shapes dromaius may give virsh, and for an action only on a domain the key is
/// granted that action on.
fn check_exec(world: &World, key: &str, exec: &Exec, label: &str) {
    assert_eq!(exec.path, b"/usr/bin/virsh", "{label}: ran {exec:?}");
    assert!(exec.succeeded, "{label}: {exec:?}");
    let mut env: Vec<String> = exec
        .env
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    env.sort();
    assert_eq!(
        env,
        [
            "HOME=/nonexistent",
            "LC_ALL=C",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "XDG_CACHE_HOME=/nonexistent",
            "XDG_CONFIG_HOME=/nonexistent",
        ],
        "{label}: virsh's environment"
    );
    let argv = exec.argv_str();
    let uri = world.rig.test_uri();
    let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    assert_eq!(args[..2], ["--connect", uri.as_str()], "{label}: {argv:?}");
    let rest = &args[2..];
    let listing: [&[&str]; 2] = [
        &["--readonly", "list", "--all", "--id", "--uuid", "--name"],
        &["--readonly", "domstats", "--state"],
    ];
    if listing.contains(&rest) {
        return;
    }
    let (action, domain) = match rest {
        ["--readonly", "domstate", "--domain", domain] => (Action::Status, *domain),
        ["--readonly", "domdisplay", "--domain", domain] => (Action::Display, *domain),
        [
            "send-key",
            "--domain",
            domain,
            "KEY_LEFTCTRL",
            "KEY_LEFTALT",
            "KEY_DELETE",
        ] => (Action::CtrlAltDel, *domain),
        ["screenshot", "--domain", domain, "--file", file] => {
            // Only ever into a fresh private directory of dromaius's own.
            assert!(
                file.starts_with("/tmp/dromaius-screenshot-") && file.ends_with("/screen"),
                "{label}: screenshot to {file}"
            );
            (Action::Screenshot, *domain)
        }
        [verb, "--domain", domain] => (
            Action::from_word(verb)
                .filter(|a| {
                    !a.is_read_only()
                        && !a.is_attachment()
                        && a.virsh_command() == a.name()
                        && *a != Action::Screenshot
                })
                .unwrap_or_else(|| panic!("{label}: verb {verb} in {argv:?}")),
            *domain,
        ),
        _ => panic!("{label}: unexpected virsh argv {argv:?}"),
    };
    let verb = action.virsh_command();
    // By the UUID of a domain, or by a name virsh can read only as that name.
    let name = match world.uuids.iter().find(|(_, u)| u.as_str() == domain) {
        Some((name, _)) => name.as_str(),
        None => {
            assert!(
                lookup::is_only_a_name(domain),
                "{label}: {domain} went to virsh as it is, but virsh could read it as an id or UUID"
            );
            domain
        }
    };
    let subject = Subject::new(&world.config, key, None);
    assert!(
        matches!(subject.decide(action, name), Decision::Allow { .. }),
        "{label}: virsh {verb} reached {name}, which {key} is not granted"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

fn printable_lines(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| (0x20..0x7f).contains(b) || *b == b'\n' || *b == b'\t')
}

fn status_of(want: Want) -> &'static [i32] {
    match want {
        Want::Invalid => &[2],
        Want::Deny => &[77],
        Want::Allow => &[0, 1],
    }
}

/// Both end-to-end tests act on the same domains and compare states: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How one case was run end to end.
enum Via<'a> {
    /// Directly, under strace: every exec and pid is known.
    Direct(&'a common::direct::Run),
    /// Through sshd: only the output.
    Ssh(&'a std::process::Output),
}

/// Runs `run_case` with the audit socket drained as syslog would, then checks every
/// promise of the module doc for `case`. Returns the new state snapshot.
fn check_case(
    world: &World,
    case: &Case,
    via: Via<'_>,
    records: &[String],
    before: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let label = &case.label;
    let out = match via {
        Via::Direct(run) => &run.output,
        Via::Ssh(out) => out,
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();

    // The exit status: the contract's, and the one the pure judgement predicts.
    let expected: &[i32] = case.wants.last().map_or(&[0], |w| status_of(*w));
    assert!(
        code.is_some_and(|c| expected.contains(&c)),
        "{label}: exit {:?}, expected one of {expected:?}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{label}: {stderr}");
    for line in stderr.lines() {
        assert!(line.starts_with("dromaius: "), "{label}: stderr {line:?}");
    }
    assert!(printable_lines(&out.stderr), "{label}: raw bytes on stderr");
    let image = matches!(&case.source, Source::Command(line) if line.starts_with(b"screenshot "))
        && code == Some(0);
    if image {
        // The one binary output: a PNG, all of it, and nothing else.
        assert!(
            out.stdout.starts_with(b"\x89PNG\r\n\x1a\n") && out.stdout.ends_with(b"IEND\xaeB`\x82"),
            "{label}: stdout is not one PNG"
        );
    } else {
        assert!(printable_lines(&out.stdout), "{label}: raw bytes on stdout");
    }
    if let Some(stdout) = case.stdout {
        assert_eq!(String::from_utf8_lossy(&out.stdout), stdout, "{label}");
    }

    // One escaped audit record per request, with the predicted decision; a flood's records
    // of refused and session requests may be left unsent, counted in a `dropped=N` record.
    let (summaries, records): (Vec<&String>, Vec<&String>) =
        records.iter().partition(|r| dropped_in(r).is_some());
    let dropped: usize = summaries.iter().filter_map(|r| dropped_in(r)).sum();
    assert_eq!(
        records.len() + dropped,
        case.wants.len(),
        "{label}: {} records and {dropped} dropped for {} requests",
        records.len(),
        case.wants.len()
    );
    let expected = |want: &Want| match want {
        Want::Invalid => "invalid",
        Want::Deny => "deny",
        Want::Allow => "allow",
    };
    // In order: each record is the next request's, or a later one's when some were dropped.
    let mut wants = case.wants.iter();
    for record in &records {
        let (decision, outcome) = check_record(record);
        let fits = |want: &&Want| {
            expected(want) == decision && status_of(**want).contains(&i32::from(outcome))
        };
        let found = if dropped == 0 {
            wants.next().filter(fits)
        } else {
            wants.by_ref().find(fits)
        };
        assert!(
            found.is_some(),
            "{label}: no request of its own for {record}"
        );
        assert!(
            record.contains(&format!("key=\"{}\"", case.key)),
            "{label}: {record}"
        );
    }
    if let (Source::Command(_), Some(record)) = (&case.source, records.last().copied()) {
        assert_eq!(
            Some(i32::from(check_record(record).1)),
            code,
            "{label}: the record's outcome is the exit status"
        );
    }

    // Nothing but virsh ran, with dromaius's argv and environment; nothing is left.
    if let Via::Direct(run) = via {
        let (first, rest) = run.execs.split_first().expect("strace saw the binary");
        assert_eq!(first.path, dromaius_bin().as_os_str().as_encoded_bytes());
        for exec in rest {
            check_exec(world, case.key, exec, label);
        }
        if !case.wants.contains(&Want::Allow) {
            assert!(rest.is_empty(), "{label}: virsh ran for a refused request");
        }
        let left = still_running(&run.pids);
        assert!(left.is_empty(), "{label}: left running: {left:?}");
    }

    // No domain outside the key's grants changed state.
    let subject = Subject::new(&world.config, case.key, None);
    let granted = |name: &str| {
        Action::ALL
            .into_iter()
            .any(|a| matches!(subject.decide(a, name), Decision::Allow { .. }))
    };
    let after = snapshot(world.rig);
    for (name, state) in &after {
        if before.get(name) != Some(state) {
            assert!(
                granted(name),
                "{label}: {name} went from {:?} to {state}",
                before.get(name)
            );
        }
    }
    after
}

/// Runs `run` while draining the audit socket (as syslog would); returns its result and
/// the records it caused, waiting for `expected` of them.
fn with_audit<T>(world: &World, expected: usize, run: impl FnOnce() -> T) -> (T, Vec<String>) {
    let seen = world.audit.records(0, Duration::ZERO).len();
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                world.audit.records(usize::MAX, Duration::from_millis(20));
            }
        });
        let result = run();
        done.store(true, Ordering::SeqCst);
        result
    });
    let records = world.audit.records(seen + expected, Duration::from_secs(5));
    (result, records[seen..].to_vec())
}

fn real_uuids(world: &World) -> Uuids {
    Uuids {
        victim: world.uuids["victim"].clone(),
        web1: world.uuids["web1"].clone(),
    }
}

#[test]
fn every_hostile_request_gets_nothing_beyond_the_grants_end_to_end() {
    let world = world();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let hostile = HostileEnv::new();
    let cases = corpus(&real_uuids(world));
    let mut before = snapshot(world.rig);
    let started = Instant::now();
    let mut slowest = (Duration::ZERO, String::new());
    let mut virsh_runs = 0;
    for case in &cases {
        let mut invocation = Invocation::new(&world.config_path, &["--key", case.key])
            .env(hostile.vars())
            .traced();
        invocation = match &case.source {
            Source::Command(line) => invocation.request(line),
            Source::Stdin(input) => invocation.stdin(input),
        };
        let (run, records) = with_audit(world, case.wants.len(), || invocation.run());
        if run.elapsed > slowest.0 {
            slowest = (run.elapsed, case.label.clone());
        }
        virsh_runs += run.execs.len() - 1;
        before = check_case(world, case, Via::Direct(&run), &records, &before);
        assert!(
            hostile.effects().is_empty(),
            "{}: the environment had effects: {:?}",
            case.label,
            hostile.effects()
        );
    }
    for name in VICTIMS {
        assert_eq!(world.rig.state(name), "running", "{name}");
    }
    eprintln!(
        "corpus end to end: {} cases, {virsh_runs} virsh runs, in {:.1?} (slowest {:.1?}: {})",
        cases.len(),
        started.elapsed(),
        slowest.0,
        slowest.1
    );
}

#[test]
fn a_representative_subset_holds_through_real_sshd() {
    let world = world();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cases = corpus(&real_uuids(world));
    let keys: BTreeMap<&str, common::SshKey> = ["alice", "solo", "mallory"]
        .into_iter()
        .map(|key| {
            let ssh_key = world
                .rig
                .authorize_gateway(&world.config_path, key, "restrict");
            (key, ssh_key)
        })
        .collect();
    // Every 20th case whose request an ssh client can send as a string, and every
    // stdin case of a kind not yet taken.
    let mut chosen = 0;
    let mut before = snapshot(world.rig);
    for (index, case) in cases.iter().enumerate() {
        let (request, input): (Option<&str>, &[u8]) = match &case.source {
            Source::Command(line) if index % 20 == 0 => match std::str::from_utf8(line) {
                Ok(text) if !text.trim().is_empty() => (Some(text), b""),
                _ => continue,
            },
            Source::Stdin(input) if index % 7 == 0 => (None, input.as_slice()),
            _ => continue,
        };
        chosen += 1;
        let (out, records) = with_audit(world, case.wants.len(), || {
            world.rig.ssh(&keys[case.key], request, input)
        });
        before = check_case(world, case, Via::Ssh(&out), &records, &before);
        for record in &records {
            assert!(record.contains("client=\"127.0.0.1 port "), "{record}");
        }
    }
    assert!(chosen >= 40, "only {chosen} cases through sshd");
    eprintln!("corpus through sshd: {chosen} cases");
}

/// Writes the corpus as fuzz seeds (`fuzz/seeds/`): `cargo test --test corpus --
/// --ignored write_fuzz_seeds`. The request_policy target reads one selector byte (0:
/// key alice, no binding, its first config) and then the line; configs are seeded with
/// this corpus's config and the README's.
#[test]
#[ignore = "writes files into the source tree; run by hand to refresh the fuzz seeds"]
fn write_fuzz_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let requests = root.join("request_policy");
    let configs = root.join("config");
    for dir in [&requests, &configs] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
    }
    let uuids = Uuids {
        victim: "6695eb01-f6a4-8304-79aa-97f2502e193f".into(),
        web1: "1c26ef96-2259-4182-8a59-ac38b2b550c3".into(),
    };
    let mut seeds = std::collections::BTreeSet::new();
    for case in corpus(&uuids) {
        let lines: Vec<Vec<u8>> = match case.source {
            Source::Command(line) => vec![line],
            Source::Stdin(input) => input
                .split(|b| *b == b'\n')
                .take(8)
                .map(<[u8]>::to_vec)
                .collect(),
        };
        for line in lines
            .into_iter()
            .filter(|l| l.len() <= 2 * MAX_REQUEST_BYTES)
        {
            let selector = match case.key {
                "solo" => 4,
                "mallory" => 5,
                _ => 0,
            };
            seeds.insert([vec![selector], line].concat());
        }
    }
    for (n, seed) in seeds.iter().enumerate() {
        std::fs::write(requests.join(format!("corpus-{n:04}")), seed).unwrap();
    }
    let readme_example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dromaius.json.example"),
    )
    .unwrap();
    let texts = [
        config_text("test:///default", Path::new("/dev/log")),
        readme_example,
        r#"{"AllowedHosts": ["vhost1.example.local", "vhost2"]}"#.into(),
        r#"{"keys": {"k": [{"domains": ["web[0-9]", "db?", "[!a-c]x", "*-prod"], "commands": ["status"], "connect": "qemu+ssh://h/system"}]}, "timeout_secs": 5}"#.into(),
    ];
    for (n, text) in texts.iter().enumerate() {
        std::fs::write(configs.join(format!("config-{n}.json")), text).unwrap();
    }
    eprintln!(
        "{} request seeds, {} config seeds",
        seeds.len(),
        texts.len()
    );
}
