//! The administrator's command line, and what an invocation of dromaius is.
//!
//! Everything here comes from `authorized_keys`, `sshd_config` or a root shell, so it is
//! trusted; nothing a user sends is parsed here. [`parse`] turns an argument vector into an
//! [`Invocation`]: the gateway (with its key, config path, go-dromaius binding) or an
//! administrator's subcommand. The binary runs it, and `check --authorized-keys` asks the
//! same function what each forced command would do, so the two cannot disagree.
//!
//! go-dromaius used Go's `flag` package, which takes `-cmd` as well as `--cmd`; those
//! single-dash long flags are rewritten to their double-dash form before clap sees them,
//! so old `authorized_keys` lines keep working.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::action::{Action, ActionSet};

#[derive(Debug, Parser)]
#[command(
    name = "dromaius",
    version,
    about = "An SSH forced command that gives each key power over its own libvirt domains only",
    long_about = "An SSH forced command that gives each key power over its own libvirt domains \
        only.\n\nWithout a subcommand it is the gateway: the request comes from \
        SSH_ORIGINAL_COMMAND, or lines are read from stdin (a prompt on a terminal).",
    after_long_help = after_long_help()
)]
pub struct Cli {
    /// The config file [default: /etc/dromaius/dromaius.json; for the gateway with -cmd/-host: ./dromaius.json]
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// The key the requests are made as [default: the Unix user running dromaius]
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,

    /// go-dromaius: the command to run on -host, or `interactive` for a session bound to it
    #[arg(long, value_name = "CMD")]
    pub cmd: Option<String>,

    /// go-dromaius: the one domain this session may act on (must be in AllowedHosts)
    #[arg(long, value_name = "DOMAIN")]
    pub host: Option<String>,

    /// Send each virsh run and each decision to syslog at debug level (for the administrator)
    #[arg(long)]
    pub debug: bool,

    #[command(subcommand)]
    pub admin: Option<AdminCommand>,
}

/// What one run of dromaius is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Gateway(GatewayArgs),
    Admin {
        /// `--config`, if given (each subcommand has its own default).
        config: Option<PathBuf>,
        command: AdminCommand,
    },
}

/// The gateway, as the administrator's forced command set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayArgs {
    /// `--config`, or the default for the mode (go-dromaius: relative to the working
    /// directory, as go-dromaius read it).
    pub config: PathBuf,
    /// `--key`; `None` means the Unix user running dromaius.
    pub key: Option<String>,
    /// go-dromaius `-host`: the one domain the session may act on.
    pub bound: Option<String>,
    /// go-dromaius `-cmd` other than `interactive`: the one request, which takes the place
    /// of `SSH_ORIGINAL_COMMAND`.
    pub command: Option<String>,
    pub debug: bool,
}

/// Why an argument vector is not an invocation.
#[derive(Debug)]
pub enum ArgsError {
    /// clap's own error (also `--help` and `--version`, which clap prints itself).
    Clap(clap::Error),
    /// Parsed, but the combination means nothing (`-cmd` without `-host`).
    Meaningless(&'static str),
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgsError::Clap(error) => {
                let text = error.to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                f.write_str(first.trim_start_matches("error: "))
            }
            ArgsError::Meaningless(why) => f.write_str(why),
        }
    }
}

/// Parses an argument vector (program name first) into an [`Invocation`].
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, ArgsError> {
    let cli = Cli::try_parse_from(normalize_legacy_flags(args)).map_err(ArgsError::Clap)?;
    invocation(cli)
}

/// What a parsed command line asks for.
pub fn invocation(cli: Cli) -> Result<Invocation, ArgsError> {
    if let Some(command) = cli.admin {
        return Ok(Invocation::Admin {
            config: cli.config,
            command,
        });
    }
    let legacy = cli.cmd.is_some() || cli.host.is_some();
    if cli.cmd.is_some() && cli.host.is_none() {
        return Err(ArgsError::Meaningless("-cmd needs -host DOMAIN"));
    }
    let default = if legacy {
        crate::config::LEGACY_DEFAULT_PATH
    } else {
        crate::config::DEFAULT_PATH
    };
    Ok(Invocation::Gateway(GatewayArgs {
        config: cli.config.unwrap_or_else(|| PathBuf::from(default)),
        key: cli.key,
        bound: cli.host,
        command: cli.cmd.filter(|cmd| cmd != "interactive"),
        debug: cli.debug,
    }))
}

/// The end of `--help`: how the gateway is deployed, what a user may send (from
/// [`Action`], the one list of commands, which `help` and the man page also use) and what
/// the exit statuses mean.
pub fn after_long_help() -> String {
    let width = Action::ALL
        .iter()
        .map(|action| action.name().len())
        .max()
        .unwrap_or(0)
        + " DOMAIN  ".len();
    let rows = |original: bool| -> String {
        Action::ALL
            .iter()
            .filter(|action| ActionSet::DEFAULT.contains(**action) == original)
            .map(|action| {
                let usage = format!("{} DOMAIN", action.name());
                format!("  {usage:<width$}{}\n", action.summary())
            })
            .collect()
    };
    format!(
        "\
Gateway, as an authorized_keys forced command (`dromaius keyline` prints such a line):
  command=\"/usr/bin/dromaius --key alice\",restrict,pty ssh-ed25519 AAAA... alice@laptop
The user sends one request (ssh dromaius@host start web1) or a session of them, one per line.
What a grant may allow; a grant without \"commands\" allows the first seven:
{}Only when a grant names them:
{}Always, and only over what is granted: list, help, exit, quit.

go-dromaius lines keep working: dromaius -cmd CMD -host DOMAIN [-config PATH]

Exit status of the gateway: 0 done; 1 virsh ran and failed (also: a domain two hypervisors
define and neither runs, a command the channel cannot carry); 2 request not understood;
69 virsh or libvirt unreachable; 77 not allowed (also: an attached console or display whose
access was revoked); 78 config missing or invalid; 124 timed out; 130 interrupted.
check: 0 valid (warnings allowed), 1 problems in --authorized-keys or --principals (or the
file cannot be read), or --live without the --user account; 69 with --live: a hypervisor
did not answer both ways; 78 config invalid.
explain: 0 allowed, 77 denied, 2 request not understood, 78 config invalid.
keyline: 0 line printed, 1 input or name refused.
Every subcommand: 2 when its command line is not understood (a value starting with -, such
as --key -alice, is read as an option: write --key=-alice).

See dromaius(1) for the config format, /usr/share/doc/dromaius/README.md for the guide.",
        rows(true),
        rows(false)
    )
}

/// Commands for the administrator at a root shell; never reachable through SSH_ORIGINAL_COMMAND.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum AdminCommand {
    /// Validate the config as the gateway would load it, and summarise it
    Check {
        /// Also lint the dromaius lines of this authorized_keys file
        #[arg(long, value_name = "FILE")]
        authorized_keys: Option<PathBuf>,
        /// Also lint the dromaius lines of this AuthorizedPrincipalsFile (certificates)
        #[arg(long, value_name = "FILE")]
        principals: Option<PathBuf>,
        /// Also ask every hypervisor the config uses what it holds now (run as root: virsh
        /// runs as --user, as the gateway would), and report who may act on each domain
        #[arg(long)]
        live: bool,
        /// The account the gateway runs as, for --live
        #[arg(
            long,
            value_name = "NAME",
            default_value = "dromaius",
            requires = "live"
        )]
        user: String,
    },
    /// Show the decision the gateway would take for a request, and which grant took it
    Explain {
        /// The key the request is made as
        #[arg(long, value_name = "NAME")]
        key: String,
        /// The request, as a user would type it: COMMAND [DOMAIN]
        #[arg(required = true, num_args = 1..=2, value_name = "REQUEST")]
        request: Vec<String>,
    },
    /// Print the authorized_keys line that ties a public key to a key name
    Keyline {
        /// The key name in the config
        #[arg(long, value_name = "NAME")]
        key: String,
        /// Leave out `pty` (no console for this key)
        #[arg(long)]
        no_pty: bool,
        /// Print an AuthorizedPrincipalsFile line for this certificate principal instead
        #[arg(long, value_name = "PRINCIPAL", conflicts_with = "public_key")]
        principal: Option<String>,
        /// The OpenSSH public key file, or - for stdin
        #[arg(value_name = "PUBKEY_FILE", required_unless_present = "principal")]
        public_key: Option<PathBuf>,
    },
}

/// The go-dromaius flags, which Go's flag package also accepts with one dash.
const LEGACY_FLAGS: [&str; 4] = ["cmd", "host", "config", "key"];

/// Rewrites `-cmd X` / `-cmd=X` (and the other legacy flags) to `--cmd X` / `--cmd=X`.
pub fn normalize_legacy_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else { return arg };
            let Some(rest) = text.strip_prefix('-').filter(|r| !r.starts_with('-')) else {
                return arg;
            };
            let name = rest.split_once('=').map_or(rest, |(name, _)| name);
            if LEGACY_FLAGS.contains(&name) {
                OsString::from(format!("-{text}"))
            } else {
                arg
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(normalize_legacy_flags(words.iter().map(OsString::from)))
    }

    #[test]
    fn go_dromaius_flags_with_one_or_two_dashes() {
        for words in [
            &["dromaius", "-cmd", "interactive", "-host", "vhost1"][..],
            &["dromaius", "--cmd", "interactive", "--host", "vhost1"],
            &["dromaius", "-cmd=interactive", "-host=vhost1"],
            &["dromaius", "--cmd=interactive", "-host", "vhost1"],
        ] {
            let cli = parse_words(words).map_err(|e| e.to_string());
            let cli = cli.as_ref().map(|c| (c.cmd.as_deref(), c.host.as_deref()));
            assert_eq!(cli, Ok((Some("interactive"), Some("vhost1"))), "{words:?}");
        }
        let cli = parse_words(&[
            "dromaius", "-cmd", "start", "-host", "h", "-config", "/x.json",
        ]);
        let cli = cli.map_err(|e| e.to_string());
        assert_eq!(cli.map(|c| c.config), Ok(Some(PathBuf::from("/x.json"))));
    }

    #[test]
    fn gateway_and_admin_forms() {
        let cli = parse_words(&["dromaius", "--key", "alice"]).map_err(|e| e.to_string());
        assert_eq!(cli.map(|c| c.key), Ok(Some("alice".into())));
        let cli = parse_words(&["dromaius", "check", "--config", "/c"]).map_err(|e| e.to_string());
        assert!(matches!(
            cli.map(|c| c.admin),
            Ok(Some(AdminCommand::Check { .. }))
        ));
        assert!(parse_words(&["dromaius", "--bogus"]).is_err());
        assert!(parse_words(&["dromaius", "-c"]).is_err());
    }

    fn gateway(words: &[&str]) -> Result<GatewayArgs, String> {
        match parse(words.iter().map(OsString::from)) {
            Ok(Invocation::Gateway(args)) => Ok(args),
            Ok(other) => Err(format!("not the gateway: {other:?}")),
            Err(error) => Err(error.to_string()),
        }
    }

    #[test]
    fn invocation_table() {
        let args = |config: &str, key: Option<&str>, bound: Option<&str>, command: Option<&str>| {
            Ok(GatewayArgs {
                config: PathBuf::from(config),
                key: key.map(str::to_owned),
                bound: bound.map(str::to_owned),
                command: command.map(str::to_owned),
                debug: false,
            })
        };
        let cases: &[(&[&str], Result<GatewayArgs, String>)] = &[
            (&["d"], args(crate::config::DEFAULT_PATH, None, None, None)),
            (
                &["d", "--key", "alice"],
                args(crate::config::DEFAULT_PATH, Some("alice"), None, None),
            ),
            (
                &["d", "--config", "/c.json", "--key", "a"],
                args("/c.json", Some("a"), None, None),
            ),
            (
                &["d", "-cmd", "interactive", "-host", "h"],
                args("dromaius.json", None, Some("h"), None),
            ),
            (
                &["d", "-cmd", "start", "-host", "h"],
                args("dromaius.json", None, Some("h"), Some("start")),
            ),
            (
                &["d", "-host", "h"],
                args("dromaius.json", None, Some("h"), None),
            ),
            (
                &["d", "-host", "h", "-config", "/x"],
                args("/x", None, Some("h"), None),
            ),
            (
                &["d", "-host", "h", "--key", "k"],
                args("dromaius.json", Some("k"), Some("h"), None),
            ),
            (
                &["d", "-cmd", "start"],
                Err("-cmd needs -host DOMAIN".into()),
            ),
        ];
        for (words, expected) in cases {
            assert_eq!(&gateway(words), expected, "{words:?}");
        }
        let debug = gateway(&["d", "--key", "a", "--debug"]).map(|g| g.debug);
        assert_eq!(debug, Ok(true));
        assert!(gateway(&["d", "--bogus"]).is_err());
        assert!(matches!(
            parse(["d", "check"].map(OsString::from)),
            Ok(Invocation::Admin {
                config: None,
                command: AdminCommand::Check { .. }
            })
        ));
    }

    #[test]
    fn only_known_legacy_flags_are_rewritten() {
        let out = normalize_legacy_flags(
            ["-cmd", "-x", "-hostname", "--key", "-", "-config=a"].map(OsString::from),
        );
        assert_eq!(
            out,
            ["--cmd", "-x", "-hostname", "--key", "-", "--config=a"].map(OsString::from)
        );
    }
}
