//! The system effects, each behind a narrow interface the pure code is tested over: virsh
//! runs (`virsh`), the process's signals, children and terminal (`process`), the user's
//! channel (`channel`), the display relay (`relay`), the prompt (`prompt`), the trusted
//! reading of files (`files`), audit records to syslog (`syslog`), and the administrator's subcommands' I/O (`admin`).
//! Nothing here decides policy.

pub mod admin;
pub mod channel;
pub mod files;
pub mod process;
pub mod prompt;
pub mod relay;
pub mod syslog;
pub mod virsh;
