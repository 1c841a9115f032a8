//! dromaius: an SSH forced command that gives each key power over its own libvirt domains.
//! Everything is the library's; see `dromaius::entry`.

fn main() -> std::process::ExitCode {
    dromaius::entry::run(std::env::args_os())
}
