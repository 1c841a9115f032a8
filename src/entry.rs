//! The program's one entry point: what an invocation is (`cli`), then the administrator's
//! subcommand or the gateway, wired to the real system. `main.rs` only calls [`run`].

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{self, ArgsError, GatewayArgs, Invocation};
use crate::config::DEFAULT_SYSLOG_SOCKET;
use crate::error::{Error, Status};
use crate::gateway::{self, ConfigSource, Effects, Gateway, User, Who};
use crate::session::{self, LineSource, OneLine, PlainLines};
use crate::system::channel::{self, Terminal};
use crate::system::files::ConfigFile;
use crate::system::process::{self, SystemClock};
use crate::system::prompt::Prompt;
use crate::system::syslog::{self, Syslog};
use crate::system::{admin, files, virsh::Virsh};
use crate::tunnel::{self, Tunnel};

/// The whole program: what the command line asks for, carried out; its exit status.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let status = match cli::parse(args) {
        Ok(Invocation::Admin { config, command }) => admin::run(config, command),
        Ok(Invocation::Gateway(args)) => run_gateway(args),
        // --help and --version too: clap prints them and exits as it should.
        Err(ArgsError::Clap(error)) => error.exit(),
        Err(ArgsError::Meaningless(why)) => {
            channel::report(&Error::Arguments(why));
            Status::Usage
        }
    };
    status.into()
}

/// The gateway: one request (`SSH_ORIGINAL_COMMAND` or `-cmd`), or a session of them.
fn run_gateway(args: GatewayArgs) -> Status {
    process::install_signal_handlers();
    let (who, unread_identity) = who(&args);
    let original = original_command();
    // A standard client's fixed command (a viewer's tunnel) is not a request of the grammar.
    let tunnel = original.as_deref().and_then(tunnel::recognise);
    let one_request = args.command.clone().map(String::into_bytes).or(original);
    let user = Terminal::new(one_request.is_some());
    let source = ConfigFile::new(&args.config, &who.key);
    let config = match source.load() {
        Ok(config) => config,
        Err(refused) => {
            let syslog = Syslog::connect(Path::new(DEFAULT_SYSLOG_SOCKET));
            return gateway::refuse_config(&who, &user, &syslog, refused);
        }
    };
    if args.debug {
        syslog::enable_debug(&config.syslog_socket);
    }
    if let Some(why) = unread_identity {
        log::debug!("SSH_USER_AUTH: {why}; records carry no fingerprint");
    }
    let syslog = Syslog::connect(&config.syslog_socket);
    let virsh = Virsh::new(&config.virsh);
    let effects = Effects {
        libvirt: &virsh,
        config: &source,
        audit: &syslog,
        user: &user,
        clock: &SystemClock,
    };
    let gateway = Gateway::new(who, effects, config, one_request.is_some());
    if let Some(Tunnel::Viewer { endpoint, .. }) = &tunnel {
        return gateway.tunnel(endpoint);
    }
    let mut lines: Box<dyn LineSource + '_> = match one_request {
        Some(line) => Box::new(OneLine::new(line)),
        None if user.channel().stdin_is_terminal => {
            Box::new(Prompt::new(&gateway.session_name(), &gateway))
        }
        None => Box::new(PlainLines::new(std::io::stdin().lock(), None)),
    };
    session::run(lines.as_mut(), |line| {
        // Until the record is sent, a hang-up must not end the process under us.
        let _in_hand = process::request_in_hand();
        gateway.handle(line)
    })
}

/// Who asks: `--key` (or the Unix user), the `-host` binding, `SSH_CONNECTION`'s client,
/// and sshd's word for which key or certificate logged in — never an error, never a delay:
/// without it records are as before (why there is none is for the debug log).
fn who(args: &GatewayArgs) -> (Who, Option<String>) {
    let (identity, unread) =
        match std::env::var_os("SSH_USER_AUTH").map(|p| files::read_identity(&p)) {
            Some(Ok(identity)) => (Some(identity), None),
            Some(Err(why)) => (None, Some(why)),
            None => (None, None),
        };
    let who = Who {
        key: args
            .key
            .clone()
            .or_else(process::unix_user_name)
            .unwrap_or_default(),
        bound: args.bound.clone(),
        client: std::env::var("SSH_CONNECTION")
            .ok()
            .and_then(|v| crate::audit::client_from_ssh_connection(&v)),
        identity,
    };
    (who, unread)
}

/// `SSH_ORIGINAL_COMMAND`, when set and not blank: the one request.
fn original_command() -> Option<Vec<u8>> {
    std::env::var_os("SSH_ORIGINAL_COMMAND")
        .filter(|command| !command.as_bytes().iter().all(|b| matches!(b, b' ' | b'\t')))
        .map(|command| command.as_bytes().to_vec())
}
