//! The man page dromaius(1): generated from the clap definitions in `cli` (synopsis,
//! options, subcommands) plus the hand-written sections clap knows nothing of (the config
//! format, what users type, exit statuses, files).
//!
//! It is built by a test, not by the binary: `man_page_is_up_to_date` renders the page
//! and fails when `doc/dromaius.1` differs, so the shipped page can never lag behind the
//! flags. `DROMAIUS_WRITE_MAN=1 cargo test --lib man_page` rewrites the file.
//! Nothing here is compiled into the program.

#![cfg(test)]

use clap::CommandFactory;

use crate::cli::Cli;

/// Escapes text for roff: backslashes, hyphens (so they stay ASCII), and a leading `.` or
/// `'` that would be taken for a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn bold(text: &str) -> String {
    format!("\\fB{}\\fR", roff(text))
}

fn italic(text: &str) -> String {
    format!("\\fI{}\\fR", roff(text))
}

/// One synopsis line: `dromaius WORDS [--flag VALUE] ... POSITIONAL`, from clap's args.
fn synopsis(words: &str, command: &clap::Command, skip: &[&str]) -> String {
    let mut line = bold(words);
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || ["help", "version"].contains(&id) || skip.contains(&id) {
            continue;
        }
        let value = arg.get_value_names().map(|names| {
            names
                .iter()
                .map(|n| italic(n))
                .collect::<Vec<_>>()
                .join(" ")
        });
        let mut part = match (arg.get_long(), &value) {
            (Some(long), Some(value)) if arg.get_action().takes_values() => {
                format!("{} {value}", bold(&format!("--{long}")))
            }
            (Some(long), _) => bold(&format!("--{long}")),
            (None, Some(value)) => value.clone(),
            (None, None) => italic(id),
        };
        if arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
            part.push_str(" ...");
        }
        if arg.is_required_set() {
            line.push_str(&format!(" {part}"));
        } else {
            line.push_str(&format!(" [{part}]"));
        }
    }
    format!("{line}\n.br\n")
}

/// `.TP` entries for a command's options and arguments.
fn options(command: &clap::Command, skip: &[&str]) -> String {
    let mut out = String::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || skip.contains(&id) {
            continue;
        }
        let mut head: Vec<String> = Vec::new();
        if let Some(short) = arg.get_short() {
            head.push(bold(&format!("-{short}")));
        }
        if let Some(long) = arg.get_long() {
            head.push(bold(&format!("--{long}")));
        }
        let mut head = head.join(", ");
        if let Some(names) = arg.get_value_names() {
            let names: Vec<String> = names.iter().map(|n| italic(n)).collect();
            if head.is_empty() {
                head = names.join(" ");
            } else if arg.get_action().takes_values() {
                head = format!("{head} {}", names.join(" "));
            }
        }
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        out.push_str(&format!(".TP\n{head}\n{}\n", roff(&help)));
    }
    out
}

/// The whole page.
pub fn render() -> String {
    let mut cli = Cli::command();
    cli.build();
    let version = cli.get_version().unwrap_or_default().to_string();
    let mut page = format!(
        ".TH DROMAIUS 1 \"\" \"dromaius {}\" \"User Commands\"\n",
        roff(&version)
    );
    page.push_str(".SH NAME\ndromaius \\- ");
    page.push_str(&roff(
        &cli.get_about().map(|a| a.to_string()).unwrap_or_default(),
    ));
    page.push_str("\n.SH SYNOPSIS\n");
    page.push_str(&synopsis("dromaius", &cli, &["cmd", "host"]));
    page.push_str(&format!(
        "{} {} {} {} {} [{} {}]\n.br\n",
        bold("dromaius"),
        bold("-cmd"),
        italic("CMD"),
        bold("-host"),
        italic("DOMAIN"),
        bold("-config"),
        italic("PATH")
    ));
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        page.push_str(&synopsis(&format!("dromaius {name}"), sub, &[]));
    }
    page.push_str(DESCRIPTION);
    page.push_str(".SH OPTIONS\n");
    page.push_str(&options(&cli, &[]));
    page.push_str(".SH ADMINISTRATOR SUBCOMMANDS\n");
    page.push_str(ADMIN_INTRO);
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        page.push_str(&format!(".SS dromaius {}\n", roff(name)));
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        page.push_str(&format!("{}.\n", roff(&about)));
        if let Some(more) = SUBCOMMAND_DETAILS.iter().find(|(n, _)| *n == name) {
            page.push_str(more.1);
        }
        page.push_str(&options(sub, &["help", "config"]));
    }
    page.push_str(REST);
    page
}

const DESCRIPTION: &str = r#".SH DESCRIPTION
.B dromaius
is run by
.BR sshd (8)
as the forced command of an
.I authorized_keys
line, one line per user key:
.PP
.RS
.nf
command="/usr/bin/dromaius \-\-key alice",restrict,pty ssh\-ed25519 AAAA... alice@laptop
.fi
.RE
.PP
Each key may act only on the libvirt domains its grants in
.I dromaius.json
name, with the commands they name, and on nothing else.
Requests are checked against the config and carried out by running
.BR virsh (1)
with an argument vector dromaius built itself, never through a shell.
.PP
Without a subcommand it is the gateway.
When
.B SSH_ORIGINAL_COMMAND
is set and not blank, it is one request (\fBssh dromaius@host start web1\fR);
dromaius runs it and exits with its status.
Otherwise requests are read from standard input, one per line: at a prompt when it is a
terminal, as plain lines when it is not.
The identity is the
.B \-\-key
name, or without it the name of the Unix user running dromaius.
.PP
The flags of go\-dromaius are accepted unchanged, with one or two dashes:
.B \-cmd interactive \-host
.I DOMAIN
opens a session bound to DOMAIN, any other
.B \-cmd
runs that one command on it; DOMAIN must be listed in
.B AllowedHosts
(or granted to the identity).
In this mode the default config is
.I dromaius.json
in the working directory.
"#;

const ADMIN_INTRO: &str = r#"These are for the administrator at a root shell.
None of them can be reached through
.B SSH_ORIGINAL_COMMAND
or the prompt: a user's line is only ever read as a request, and no request is named like
them.
They read the config with the gateway's own code.
"#;

const SUBCOMMAND_DETAILS: [(&str, &str); 3] = [
    (
        "check",
        r#"Prints a short summary (keys, grants, commands) and exits 0, or prints every problem as
\fIfile\fR:\fIline\fR:\fIcolumn\fR: \fIreason\fR and exits 78.
It warns, without failing, about grants that can never match (every domain and command
they name is decided first by an earlier grant of the key: found when an earlier grant
names \fB*\fR, the same pattern, or a pattern matching the exact name), duplicate grants,
keys with no grants, exact domain names that virsh would read as a domain id or UUID
(such as \fB2\fR, \fB+5\fR, \fB007\fR), and a config writable by anyone but root.
.PP
With \fB\-\-authorized\-keys\fR it reads that file as sshd does and, for every line that
runs dromaius, checks that the command is this binary by an absolute path, that its
arguments are accepted, that its \fB\-\-key\fR is in the config (or its \fB\-host\fR in
AllowedHosts), that it reads the config being checked, that \fBrestrict\fR (or every
no\-*\-forwarding option) is there, and that a key granted \fBconsole\fR keeps a
\fBpty\fR.
Any line without a forced command, and any public key already on an earlier line, is a
problem too.
Each problem names its line; the exit status is 1 if there is any.
.PP
With \fB\-\-live\fR, run as root, it becomes the gateway's account (\fB\-\-user\fR
\fINAME\fR, default \fBdromaius\fR) and asks every hypervisor the config uses, all at
once, for one read\-only listing and whether it takes a read\-write connection.
It prints each hypervisor reachable or not, each existing domain with the keys and groups
that may act on it and by which grant, flags (\fB!\fR) domains more than one key may act
on, names defined on more than one hypervisor and names virsh would read as an id or
UUID, and lists grants that match no existing domain.
The exit status is 69 if a hypervisor did not answer both ways.
"#,
    ),
    (
        "explain",
        r#"The request is given as the user would type it, \fICOMMAND\fR [\fIDOMAIN\fR].
It is parsed and judged by the gateway's own code; nothing is run and libvirt is not asked.
The answer names the grant that allowed it (its number and its line in the config), or
why no grant did.
Exit status: 0 allowed, 77 denied, 2 when the request would not parse, 78 when the config
is invalid.
"#,
    ),
    (
        "keyline",
        r#"Prints the one \fIauthorized_keys\fR line to add for a public key:
\fBcommand="\fR\fI/path/to/dromaius\fR \fB\-\-key\fR \fINAME\fR[ \fB\-\-config\fR \fIPATH\fR]\fB",restrict,pty\fR
followed by the key and its comment (\fBrestrict\fR alone with \fB\-\-no\-pty\fR).
The path is this binary's own, resolved; \fB\-\-config\fR is added when given.
The input must be one OpenSSH public key line (ssh\-ed25519, ssh\-rsa,
ecdsa\-sha2\-nistp256/384/521, sk\-ssh\-ed25519@openssh.com,
sk\-ecdsa\-sha2\-nistp256@openssh.com) whose data decodes to a key of that type.
Private keys, options and extra lines are refused.
Key names may hold letters, digits and \fB. _ \- + @\fR (not first \fB\-\fR), paths
letters, digits and \fB/ . _ \- + @ % : , =\fR: nothing sshd or the shell would
interpret, so the line needs no quoting.
Exit status 0, or 1 when the input or a name is refused; a key missing from the config
is a warning only.
"#,
    ),
];

const REST: &str = r#".SH CONFIGURATION
The config,
.I /etc/dromaius/dromaius.json
by default, is one JSON object:
.PP
.RS
.nf
{
  "virsh": "/usr/bin/virsh",
  "connect": "qemu:///system",
  "timeout_secs": 60,
  "syslog_socket": "/dev/log",
  "keys": {
    "alice": [
      { "domains": ["alice\-*"], "commands": ["start", "shutdown", "status", "console"] },
      { "domains": ["shared\-db"], "commands": ["status"] }
    ],
    "ops": [ { "domains": ["*"] } ]
  }
}
.fi
.RE
.TP
.B virsh
Absolute path of virsh. Default \fI/usr/bin/virsh\fR.
.TP
.B connect
Where grants without their own look their domains up: a libvirt URI, with a scheme, a
name from \fBhypervisors\fR, or a non\-empty list of them. Default \fBqemu:///system\fR.
.TP
.B hypervisors
Name to libvirt URI (\fBqemu+ssh://\fR, \fBqemu+tls://\fR, ...), for a fleet behind one
gateway; names are letters, digits, \fB.\fR, \fB_\fR and \fB\-\fR.
.TP
.B timeout_secs
Limit for every command but console and display, 1 to 604800. Default 60.
.TP
.B syslog_socket
Absolute path of the syslog datagram socket the audit goes to. Default \fI/dev/log\fR.
.TP
.B idle_timeout_secs
A prompt that has waited this long for a line ends the session. Default: none.
.TP
.B groups
Group name to a list of key names; an entry \fB@\fR\fIGROUP\fR in \fBkeys\fR holds
grants for every member, where it stands in file order.
.TP
.B keys
Key name to a list of grants.
A grant has \fBdomains\fR (required, not empty: exact names, or patterns that mean what
they mean to bash's \fB[[ NAME == PATTERN ]]\fR: \fB*\fR, \fB?\fR, \fB[...]\fR with
\fB[!...]\fR and \fB[^...]\fR negating, POSIX classes such as \fB[[:digit:]]\fR, and \fB\e\fR
escaping; a pattern bash would read two ways refuses the config), \fBcommands\fR (any of start, shutdown, reboot, reset, destroy,
console, status, suspend, resume, ctrl\-alt\-del, screenshot, display; the seven from start
to status when left out: the later five only by name), \fBconnect\fR (where this grant's domains
live instead of the top\-level \fBconnect\fR: a URI, a hypervisor name, or a list) and
\fBexpires\fR (a date, through the end of that day UTC, or an RFC 3339 time with its
offset; an expired grant matches nothing).
.TP
.B AllowedHosts
go\-dromaius: the domains a \fB\-host\fR session may be bound to, with the seven commands
from start to status.
.PP
A config needs \fBkeys\fR, \fBAllowedHosts\fR or both.
Every \fI*.json\fR file (not starting with a dot) of the directory \fIdromaius.d\fR beside
the config is read after it, in byte order, and holds only \fBkeys\fR and \fBgroups\fR;
a key or group defined twice, or a file that does not parse or could be rewritten by
others, refuses the whole config.
In a session the config is read again before every request, and every few seconds while
a console or display is attached: access removed ends with the next request, and ends an
attached console or display.
A request is allowed when some grant of the key matches both the domain and the command;
the first such grant in file order decides, and its \fBconnect\fR is where the domain is
looked up.
With several hypervisors, the domain is looked up on each at once and acted on where it
is defined; where it is active, if more than one defines it; never started while two
define it and neither runs it, nor while a hypervisor of the grant cannot be reached.
\fBlist\fR then names each domain's hypervisor, and a hypervisor that cannot be reached.
\fBlist\fR, \fBhelp\fR, \fBexit\fR and \fBquit\fR are always allowed and show only what is
granted.
A key the config does not name is refused every request.
Unknown fields, wrong types, \fBnull\fR, an empty \fBdomains\fR or \fBcommands\fR, an
unknown command, a bad pattern, a relative path or a URI without a scheme: the whole
config is refused, with the file, line, column and reason.
.SH REQUESTS
One request per line, \fICOMMAND\fR [\fIDOMAIN\fR], words separated by spaces or tabs, at
most 4096 bytes; nothing else is interpreted.
.TP
\fBstart\fR, \fBshutdown\fR, \fBreboot\fR, \fBreset\fR, \fBdestroy\fR \fIDOMAIN\fR
Boot, power off (ACPI), reboot (ACPI), hard reset, hard power off.
.TP
\fBconsole\fR \fIDOMAIN\fR
The serial console; needs \fBssh \-t\fR and the \fBpty\fR option; \fBCtrl+]\fR leaves.
.TP
\fBstatus\fR \fIDOMAIN\fR
The domain's state.
.TP
\fBsuspend\fR, \fBresume\fR \fIDOMAIN\fR
Pause the guest's CPUs; let them run again.
.TP
\fBctrl\-alt\-del\fR \fIDOMAIN\fR
Press Ctrl+Alt+Del on the guest's keyboard.
.TP
\fBscreenshot\fR \fIDOMAIN\fR
The guest's screen as an image (PNG) on stdout, which must not be a terminal:
\fBssh dromaius@vm\-host screenshot web1 > web1.png\fR.
.TP
\fBdisplay\fR \fIDOMAIN\fR
Relay the guest's VNC console over the SSH channel's stdin and stdout, as one request at
\fBssh \-T\fR (refused at the prompt and with a terminal), only from a hypervisor on this
host, e.g.
\fBsocat TCP\-LISTEN:5901,bind=127.0.0.1,reuseaddr EXEC:'ssh \-T dromaius@vm\-host display
web1'\fR, then \fBvncviewer 127.0.0.1::5901\fR.
It ends when either side closes, on hang\-up, or when the access is revoked; its start and
end are audited, the end with the bytes each way and how long it lasted.
.TP
.B list
The existing domains this key may act on, with their state.
.TP
\fBhelp\fR, \fBexit\fR, \fBquit\fR
The commands this key may use; end the session.
.PP
\fIDOMAIN\fR may be left out when the key is granted exactly one name and no pattern, or
the session is bound by \fB\-host\fR.
.SH EXIT STATUS
.TP
.B 0
Done.
.TP
.B 1
virsh ran and failed (already running, no such granted domain, console in use, no
graphical display), a command the channel cannot carry (console without a terminal,
screenshot to a terminal, display at the prompt or with a terminal), or display on a
hypervisor that is not on this host.
.TP
.B 2
The request could not be parsed.
.TP
.B 69
virsh could not be run, or libvirt could not be reached.
.TP
.B 77
Not allowed: the domain or the command is not granted to this key, or the key is unknown.
The user is told only "permission denied", whether or not the domain exists.
.TP
.B 78
The config is missing, unreadable or invalid.
.TP
.B 124
The command ran past \fBtimeout_secs\fR and was killed.
.TP
.B 130
Interrupted.
.PP
The administrator subcommands have their own, given with each above.
.SH FILES
.TP
.I /etc/dromaius/dromaius.json
The config; owned by root and writable by root only.
.TP
.I /etc/dromaius/dromaius.d/*.json
More keys and groups, read after the config in byte order of their names.
.TP
.I /usr/share/doc/dromaius/dromaius.json.example
An example config.
.SH AUDIT
Every request, allowed or not, is one syslog record (facility authpriv, ident dromaius)
with the key, the client address, the command, the domain, the decision and the exit
status; for a fleet, the hypervisor acted on; with sshd's \fBExposeAuthInfo yes\fR, the
fingerprint of the key that logged in and, for a certificate, its key ID and serial.
Every field a user controls is escaped.
.SH EXAMPLES
.nf
dromaius keyline \-\-key alice /tmp/alice.pub >> ~dromaius/.ssh/authorized_keys
dromaius keyline \-\-key alice \-\-principal alice >> /etc/dromaius/principals
dromaius check \-\-principals /etc/dromaius/principals
dromaius check \-\-authorized\-keys ~dromaius/.ssh/authorized_keys
dromaius explain \-\-key alice destroy alice\-web
ssh dromaius@vm\-host status alice\-web
.fi
.SH SEE ALSO
.BR virsh (1),
.BR sshd (8),
.BR authorized_keys (5)
"#;

mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn man_page_is_up_to_date() {
        let page = render();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("doc/dromaius.1");
        if std::env::var_os("DROMAIUS_WRITE_MAN").is_some() {
            std::fs::write(&path, &page).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == page,
            "doc/dromaius.1 is not what the clap definitions give; regenerate it with \
             DROMAIUS_WRITE_MAN=1 cargo test --lib man_page"
        );
    }

    #[test]
    fn man_page_covers_every_subcommand_and_option() {
        let page = render();
        for word in [
            ".SS dromaius check",
            ".SS dromaius explain",
            ".SS dromaius keyline",
            "\\-\\-authorized\\-keys",
            "\\-\\-no\\-pty",
            "\\-\\-config",
            ".SH CONFIGURATION",
            ".SH EXIT STATUS",
        ] {
            assert!(page.contains(word), "{word}");
        }
        assert!(
            !page.contains("dromaius help"),
            "clap's help subcommand is not documented"
        );
    }

    #[test]
    fn man_page_renders_without_a_warning() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("doc/dromaius.1");
        // nroff (Debian package groff-base, installed by scripts/install-deps).
        let out = std::process::Command::new("nroff")
            .args(["-man", "-ww", "-Tutf8"])
            .arg(&path)
            .output()
            .expect("run nroff (apt-get install groff-base)");
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }

    #[test]
    fn roff_escaping() {
        assert_eq!(roff("--key"), "\\-\\-key");
        assert_eq!(roff("a\\b"), "a\\eb");
        assert_eq!(roff(".x"), "\\&.x");
        assert_eq!(roff("'x"), "\\&'x");
    }
}
