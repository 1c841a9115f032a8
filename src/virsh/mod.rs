//! virsh as dromaius speaks it: the argument vectors it builds ([`argv`]), the environment
//! it runs in, and how it reads what virsh prints ([`parse`]). Pure: running virsh is
//! `system::virsh`'s job.
//!
//! Every argv is complete — `--connect URI`, `--readonly` for reads, a command, and the
//! domain as its own word after `--domain` — so virsh never reads a command script (one
//! argument), opens its own shell (none), takes a user's word for an option, or uses a
//! default URI. A domain goes to virsh by name only when `lookup::is_only_a_name` says virsh
//! cannot read it as anything else; otherwise by the UUID a listing gave for that exact name.

pub mod argv;
pub mod parse;

/// The fixed environment virsh runs in: nothing of ours (no LIBVIRT_DEFAULT_URI, VIRSH_*,
/// LIBVIRT_LOG_*), and a HOME and XDG_CONFIG_HOME that do not exist, so that no
/// libvirt.conf (URI aliases, default URI) is read from anywhere a user could influence.
pub const ENVIRONMENT: [(&str, &str); 5] = [
    ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    ("LC_ALL", "C"),
    ("HOME", "/nonexistent"),
    ("XDG_CONFIG_HOME", "/nonexistent"),
    ("XDG_CACHE_HOME", "/nonexistent"),
];
