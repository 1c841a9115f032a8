//! What dromaius costs on top of the virsh work it cannot avoid, measured side by side.
//!
//! Stands up the same rig as the end-to-end tests (`rig/`: a session libvirtd
//! serving the test driver, a loopback sshd), then for each figure runs A and B interleaved
//! (A B A B …) and prints the median of each and the ratio A/B beside its goal. Interleaving
//! makes both sides share whatever else the machine is doing at the time.
//!
//! It prints figures; it never fails on a timing. It fails only when something it runs does
//! not work (a request that does not answer what it should, a rig that does not come up),
//! which is what CI's `--quick` run is there to catch.
//!
//! ```text
//! cargo bench --bench gateway                # the full run, for BENCHMARKS.md
//! cargo bench --bench gateway -- --quick     # few rounds, a short session: proves it works
//! cargo bench --bench gateway -- list memory # only the figures named
//! ```
//!
//! Figures (see `FIGURES`): `one-shot`, `host-size`, `over-ssh`, `list`, `keys`, `memory`,
//! `cpu`, `drop-ins`, `fleet-list`, `remote-status`, `session`. Every figure but `host-size` and the
//! fleet's runs on a hypervisor of a thousand domains; the fleet's add a hypervisor reached
//! through libvirt's ssh transport (via the rig's sshd, its host key pinned).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.
//!
//! How the two figures that are not wall-clock times are taken:
//! - dromaius's own CPU time: the harness waits for the process to exit without reaping it
//!   (`waitid(WNOWAIT)`) and reads `/proc/PID/schedstat` (nanoseconds on the CPU) of the
//!   zombie. That counts dromaius's main thread, which does all of a request's work
//!   (reading virsh's output included), and never its virsh children, which are other
//!   processes; only its signal thread, idle unless a signal comes, is left out.
//! - dromaius's peak memory: the config names a fake virsh (a shell script) that, when
//!   dromaius asks it for the domain's state — after the config was loaded and the request
//!   judged — copies `VmHWM` from `/proc/$PPID/status`, i.e. dromaius's own high-water mark.

use dromaius_rig as common;

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::libvirtd::VIRSH;
use common::support::{CLEAN_PATH, path_str};
use common::world::make_executable;
use common::{AuditSink, Libvirtd, Rig, SshKey, Sshd, dromaius_bin, write_file};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

/// The domain every `status` figure asks about (running).
const DOMAIN: &str = "bench-d";
/// How many domains the `list` figure's key is granted (all existing, on the test driver).
const LIST_DOMAINS: usize = 1000;
/// The big config of the `keys` figure.
const BIG_KEYS: usize = 10_000;
const BIG_GRANTS: usize = 20_000;
/// The figures, in the order they run.
const FIGURES: [&str; 15] = [
    "one-shot",
    "host-size",
    "over-ssh",
    "list",
    "keys",
    "memory",
    "cpu",
    "drop-ins",
    "fleet-list",
    "remote-status",
    "session",
    "slow-syslog",
    "slow-acting",
    "rpc-list",
    "rpc-screenshots",
];

struct Settings {
    quick: bool,
    /// Rounds (A and B once each) for the fast figures.
    rounds: usize,
    /// Rounds for the figures that go through ssh.
    ssh_rounds: usize,
    /// Requests per side of the `session` figure, and its rounds.
    session_requests: usize,
    session_rounds: usize,
    /// Figures to run; empty means all.
    only: Vec<String>,
}

impl Settings {
    fn from_args() -> Option<Settings> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if !args.iter().any(|a| a == "--bench") {
            return None;
        }
        let quick = args.iter().any(|a| a == "--quick");
        let only: Vec<String> = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        if let Some(unknown) = only.iter().find(|o| !FIGURES.contains(&o.as_str())) {
            panic!("no figure named {unknown:?}; the figures are {FIGURES:?}");
        }
        Some(if quick {
            Settings {
                quick,
                rounds: 3,
                ssh_rounds: 2,
                session_requests: 10,
                session_rounds: 1,
                only,
            }
        } else {
            Settings {
                quick,
                // On this kind of VM one run can take half as long again as the next, so a
                // median of 61 rounds still moved a ratio by ±0.05 from run to run, and an
                // ssh login varies by tens of milliseconds.
                rounds: 201,
                ssh_rounds: 101,
                session_requests: 1000,
                session_rounds: 1,
                only,
            }
        })
    }

    fn wants(&self, figure: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == figure)
    }
}

fn main() {
    let Some(settings) = Settings::from_args() else {
        println!("gateway benchmark: run it with `cargo bench --bench gateway [-- --quick]`");
        return;
    };
    let started = Instant::now();
    let load_before = loadavg();
    let bench = Bench::new();
    let (figures, floor) = run_figures(&bench, &settings);
    let notes = [floor.note, binary_note()];
    print_report(&settings, &figures, &notes, &load_before, started);
}

/// Every figure `settings` asks for, in the order they have always run: a figure's
/// neighbours are part of the weather it is measured in.
fn run_figures(bench: &Bench, settings: &Settings) -> (Vec<Figure>, Floor) {
    let mut figures = single_request_figures(bench, settings);
    let floor = exec_floor(settings);
    if settings.wants("cpu") {
        if let Some(figure) = own_cpu_figure(&figures, *bench.floor_cpu.borrow()) {
            figures.push(figure);
        }
    }
    if settings.wants("drop-ins") {
        figures.push(progress(bench.drop_ins(settings)));
    }
    figures.extend(fleet_figures(bench, settings));
    if settings.wants("session") {
        figures.push(progress(bench.session(settings)));
    }
    figures.extend(rpc_figures(bench, settings));
    figures.extend(slow_syslog_figures(bench, settings));
    (figures, floor)
}

/// The figures of single requests, on the hypervisor `Bench::new` filled.
fn single_request_figures(bench: &Bench, settings: &Settings) -> Vec<Figure> {
    let mut figures = Vec::new();
    // `cpu` is computed from the one-shot figure's runs.
    if settings.wants("one-shot") || settings.wants("cpu") {
        figures.push(progress(bench.one_shot(settings)));
    }
    if settings.wants("host-size") {
        figures.push(progress(bench.host_size(settings)));
    }
    if settings.wants("over-ssh") {
        figures.push(progress(bench.over_ssh(settings)));
    }
    if settings.wants("list") {
        figures.push(progress(bench.list(settings)));
    }
    if settings.wants("keys") {
        figures.push(progress(bench.keys(settings)));
    }
    if settings.wants("memory") {
        figures.push(progress(bench.memory(settings)));
    }
    figures
}

/// The figures of a hypervisor reached over ssh; its libvirtd is started only for them.
fn fleet_figures(bench: &Bench, settings: &Settings) -> Vec<Figure> {
    let mut figures = Vec::new();
    if !settings.wants("fleet-list") && !settings.wants("remote-status") {
        return figures;
    }
    let remote = Remote::new(bench);
    if settings.wants("fleet-list") {
        figures.push(progress(bench.fleet_list(settings, &remote)));
    }
    if settings.wants("remote-status") {
        figures.push(progress(bench.remote_status(settings, &remote)));
    }
    figures
}

/// The figures of a libvirt client of the user's own; its keys are made only for them.
fn rpc_figures(bench: &Bench, settings: &Settings) -> Vec<Figure> {
    let mut figures = Vec::new();
    if !settings.wants("rpc-list") && !settings.wants("rpc-screenshots") {
        return figures;
    }
    let clients = Clients::new(bench);
    if settings.wants("rpc-list") {
        figures.push(progress(bench.rpc_list(settings, &clients)));
    }
    if settings.wants("rpc-screenshots") {
        figures.push(progress(bench.rpc_screenshots(settings, &clients)));
    }
    figures
}

/// The figures of a slow syslog; it is started only for them.
fn slow_syslog_figures(bench: &Bench, settings: &Settings) -> Vec<Figure> {
    let mut figures = Vec::new();
    if !settings.wants("slow-syslog") && !settings.wants("slow-acting") {
        return figures;
    }
    let slow = SlowSyslog::start(bench);
    if settings.wants("slow-syslog") {
        figures.push(progress(bench.slow_syslog_flood(settings, &slow)));
    }
    if settings.wants("slow-acting") {
        figures.push(progress(bench.slow_syslog_acting(settings, &slow)));
    }
    figures
}

/// Which build was measured, and how big it is.
fn binary_note() -> String {
    let binary = dromaius_bin();
    let size = fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    format!(
        "binary: {} bytes ({:.2} MiB), {}",
        size,
        size as f64 / 1024.0 / 1024.0,
        binary.display()
    )
}

/// The report on stdout, in the form BENCHMARKS.md quotes: the machine, the table, its
/// notes, then dromaius's own CPU and `notes`.
fn print_report(
    settings: &Settings,
    figures: &[Figure],
    notes: &[String],
    load_before: &str,
    started: Instant,
) {
    print_header(settings, load_before, started);
    print_table(figures);
    print_own_cpu(figures, notes);
    if settings.quick {
        // Every figure ran and every request answered as it should; timings are not judged.
        println!();
        println!("bench: {} passed, 0 failed", figures.len());
    }
}

/// The title, the machine and how busy it was, which every figure depends on.
fn print_header(settings: &Settings, load_before: &str, started: Instant) {
    println!();
    println!(
        "## dromaius gateway benchmark{}",
        if settings.quick {
            " (quick mode: too few rounds to quote)"
        } else {
            ""
        }
    );
    println!();
    println!("{}", machine());
    println!(
        "load average (1, 5, 15 min): before {load_before}, after {}; run took {:.0} s",
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    println!();
}

fn print_table(figures: &[Figure]) {
    println!("| figure | A | B | median A | median B | A/B | goal |");
    println!("|---|---|---|---|---|---|---|");
    for figure in figures {
        println!("{}", figure.row());
    }
    println!();
    for note in figures.iter().filter_map(|f| f.note.as_ref()) {
        println!("- {note}");
    }
    println!();
}

fn print_own_cpu(figures: &[Figure], notes: &[String]) {
    println!("dromaius's own CPU per request (main thread, from /proc/PID/schedstat; median):");
    println!();
    for figure in figures {
        if let Some(cpu) = &figure.own_cpu {
            println!("- {}: {}", figure.name, cpu);
        }
    }
    for note in notes {
        println!("- {note}");
    }
}

/// Says on stderr that a figure is done (the full run takes minutes), and passes it on.
fn progress(figure: Figure) -> Figure {
    eprintln!(
        "bench: {} done: {} / {}",
        figure.name, figure.median_a, figure.median_b
    );
    figure
}

/// One line of the table.
struct Figure {
    name: &'static str,
    a: String,
    b: String,
    median_a: String,
    median_b: String,
    ratio: Option<f64>,
    goal: &'static str,
    own_cpu: Option<String>,
    own_cpu_seconds: Option<f64>,
    /// A line printed under the table.
    note: Option<String>,
}

impl Figure {
    fn timed(
        name: &'static str,
        a: String,
        b: String,
        goal: &'static str,
        compared: Compared,
    ) -> Figure {
        Figure {
            name,
            a,
            b,
            median_a: ms(compared.a),
            median_b: ms(compared.b),
            ratio: Some(compared.a.as_secs_f64() / compared.b.as_secs_f64()),
            goal,
            own_cpu: compared.own_cpu.map(|cpu| format!("{:.3} ms", cpu * 1e3)),
            own_cpu_seconds: compared.own_cpu,
            note: None,
        }
    }

    fn row(&self) -> String {
        let ratio = self
            .ratio
            .map_or_else(|| "—".to_owned(), |r| format!("{r:.3}"));
        format!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            self.name, self.a, self.b, self.median_a, self.median_b, ratio, self.goal
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Medians of interleaved runs.
struct Compared {
    a: Duration,
    b: Duration,
    /// Median of dromaius's own CPU seconds over the A runs, where A is dromaius itself.
    own_cpu: Option<f64>,
}

/// Runs `a` and `b` alternately, once each unmeasured (warm caches) if `warm_up`, then
/// `rounds` times each, and takes the medians.
fn interleave(
    rounds: usize,
    warm_up: bool,
    mut a: impl FnMut() -> Run,
    mut b: impl FnMut() -> Run,
) -> Compared {
    if warm_up {
        a();
        b();
    }
    let mut times_a = Vec::new();
    let mut times_b = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..rounds {
        let run = a();
        times_a.push(run.wall);
        cpus.extend(run.own_cpu);
        times_b.push(b().wall);
    }
    Compared {
        a: median(&mut times_a),
        b: median(&mut times_b),
        own_cpu: (!cpus.is_empty()).then(|| median(&mut cpus)),
    }
}

fn median<T: PartialOrd + Copy>(values: &mut [T]) -> T {
    values.sort_by(|x, y| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

/// What one measured process did.
struct Run {
    wall: Duration,
    /// Seconds the process's main thread was on a CPU (None if the kernel does not say).
    own_cpu: Option<f64>,
    stdout: String,
}

impl Run {
    fn sum(runs: impl IntoIterator<Item = Run>) -> Run {
        let mut total = Run {
            wall: Duration::ZERO,
            own_cpu: None,
            stdout: String::new(),
        };
        for run in runs {
            total.wall += run.wall;
            total.stdout.push_str(&run.stdout);
        }
        total
    }
}

/// Runs `command` to its end with `stdin` fed to it, timing it from spawn to exit and
/// reading its CPU time while it is a zombie. Panics (the harness is broken, not slow)
/// unless it exits 0 and its stdout holds `expect`.
fn measure(command: &mut Command, stdin: &[u8], expect: &str) -> Run {
    let what = format!("{command:?}");
    let began = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("stdout");
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let mut err = child.stderr.take().expect("stderr");
    let mut stderr = String::new();
    let _ = err.read_to_string(&mut stderr);
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => panic!("waitid {what}: {e}"),
        }
    }
    let wall = began.elapsed();
    let own_cpu = fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ns| ns / 1e9);
    let status = child.wait().expect("reap");
    let _ = writer.join();
    let stdout = reader.join().expect("stdout reader");
    if !status.success() || !stdout.contains(expect) {
        panic!(
            "{what} did not work ({status}); expected {expect:?} on stdout\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
        );
    }
    Run {
        wall,
        own_cpu,
        stdout,
    }
}

/// The rig, the configs and the keys every figure uses.
struct Bench {
    rig: &'static Rig,
    audit: AuditSink,
    small: PathBuf,
    big: PathBuf,
    list: PathBuf,
    /// A second hypervisor, of three domains, and a config whose connect is it.
    small_host: Libvirtd,
    small_host_config: PathBuf,
    /// ssh key whose forced command is dromaius on the small config, as `alice`.
    gateway_key: SshKey,
    /// ssh key whose forced command is bare `virsh domstate`.
    virsh_key: SshKey,
    /// ssh key whose forced command is `true`.
    true_key: SshKey,
    /// `/bin/true`'s CPU (median), taken beside the one-shot figure.
    floor_cpu: std::cell::RefCell<Option<f64>>,
}

impl Bench {
    fn new() -> Bench {
        let rig = Rig::get();
        eprintln!("bench: rig up in {:?}", rig.startup_time());
        define(rig.libvirtd(), &[DOMAIN.to_owned()], |_| true);
        // The rig's hypervisor holds a thousand domains besides: what an action costs must
        // not grow with them.
        let began = Instant::now();
        let names: Vec<String> = (0..LIST_DOMAINS).map(|i| format!("bench-{i:04}")).collect();
        define(rig.libvirtd(), &names, |i| i % 3 == 0);
        eprintln!(
            "bench: {LIST_DOMAINS} domains defined in {:?}",
            began.elapsed()
        );
        let small_host = Libvirtd::start();
        define(
            &small_host,
            &[DOMAIN.to_owned(), "small-1".into(), "small-2".into()],
            |i| i == 0,
        );
        let audit = AuditSink::new();
        let uri = rig.test_uri();
        let socket = audit.path().to_path_buf();
        let small = write_file("small.json", &config(VIRSH, &uri, &socket, 3, 4));
        let small_host_config = write_file(
            "small-host.json",
            &config(VIRSH, &small_host.test_uri(), &socket, 3, 4),
        );
        let big = write_file(
            "big.json",
            &config(VIRSH, &uri, &socket, BIG_KEYS, BIG_GRANTS),
        );
        let list = write_file("list.json", &list_config(&uri, &socket));
        let gateway_key = rig.authorize_gateway(&small, "alice", "restrict");
        let virsh_key = rig.authorize(&format!("{VIRSH} -c '{uri}' domstate {DOMAIN}"), "restrict");
        Bench {
            rig,
            audit,
            small,
            big,
            list,
            small_host,
            small_host_config,
            gateway_key,
            virsh_key,
            true_key: rig.authorize("true", "restrict"),
            floor_cpu: std::cell::RefCell::new(None),
        }
    }

    /// dromaius run directly, as sshd would run the forced command, with `request` as
    /// `SSH_ORIGINAL_COMMAND`.
    fn dromaius(&self, config: &Path, key: &str, request: &str) -> Command {
        let mut command = Command::new(dromaius_bin());
        command
            .args(["--config"])
            .arg(config)
            .args(["--key", key])
            .env_clear()
            .env("PATH", CLEAN_PATH)
            .env("SSH_ORIGINAL_COMMAND", request)
            .env("SSH_CONNECTION", "127.0.0.1 50000 127.0.0.1 22")
            .current_dir("/");
        command
    }

    fn virsh(&self, args: &[&str]) -> Command {
        let mut command = Command::new(VIRSH);
        command
            .arg("-c")
            .arg(self.rig.test_uri())
            .args(args)
            .env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", self.rig.dir())
            .env("LC_ALL", "C")
            .current_dir("/");
        command
    }

    /// Empties the audit socket so that it never fills up (a full one costs dromaius a
    /// failed send instead of a real one).
    fn drain(&self) {
        let _ = self.audit.records(0, Duration::ZERO);
    }

    /// One request, with dromaius run as sshd runs the forced command; then its audit record
    /// is drained.
    fn request(&self, config: &Path, key: &str, request: &str, expect: &str) -> Run {
        let run = measure(&mut self.dromaius(config, key, request), b"", expect);
        self.drain();
        run
    }

    /// One ssh login with `key`, `request` as its command (none: read from `stdin`); then the
    /// audit records it caused are drained.
    fn login(&self, key: &SshKey, request: Option<&str>, stdin: &[u8]) -> Run {
        let run = measure(&mut self.rig.ssh_command(key, request), stdin, "running");
        self.drain();
        run
    }

    fn one_shot(&self, settings: &Settings) -> Figure {
        let request = format!("status {DOMAIN}");
        // Each round also starts `/bin/true`, the exec floor, in the same weather.
        let mut floor = Vec::new();
        let compared = interleave(
            settings.rounds,
            true,
            || self.request(&self.small, "alice", &request, "running"),
            || {
                floor.extend(measure(Command::new("/bin/true").env_clear(), b"", "").own_cpu);
                measure(&mut self.virsh(&["domstate", DOMAIN]), b"", "running")
            },
        );
        *self.floor_cpu.borrow_mut() = (!floor.is_empty()).then(|| median(&mut floor));
        Figure::timed(
            "one-shot",
            format!(
                "dromaius `{request}` as a forced command, on a hypervisor of {} domains",
                LIST_DOMAINS + 1
            ),
            format!("`virsh -c URI domstate {DOMAIN}`, the same hypervisor"),
            "≤ 1.15",
            compared,
        )
    }

    fn host_size(&self, settings: &Settings) -> Figure {
        let request = format!("status {DOMAIN}");
        let compared = interleave(
            settings.rounds,
            true,
            || self.request(&self.small, "alice", &request, "running"),
            || self.request(&self.small_host_config, "alice", &request, "running"),
        );
        Figure::timed(
            "host size",
            format!(
                "dromaius `{request}` on a hypervisor of {} domains",
                LIST_DOMAINS + 1
            ),
            format!(
                "the same on a hypervisor of 3 (another libvirtd, {})",
                self.small_host.dir().display()
            ),
            "report (≈ 1.0)",
            compared,
        )
    }

    fn over_ssh(&self, settings: &Settings) -> Figure {
        let request = format!("status {DOMAIN}");
        // Beside B, each round also times ssh to a forced command that does nothing: the
        // part of both sides that is neither dromaius nor virsh.
        let mut floor = Vec::new();
        let compared = interleave(
            settings.ssh_rounds,
            true,
            || self.login(&self.gateway_key, Some(&request), b""),
            || {
                let run = self.login(&self.virsh_key, Some(&request), b"");
                floor.push(measure(&mut self.rig.ssh_command(&self.true_key, None), b"", "").wall);
                run
            },
        );
        let mut figure = Figure::timed(
            "over ssh",
            format!("`ssh gw {request}` (dromaius)"),
            "`ssh` to a forced command that is bare `virsh domstate`".to_owned(),
            "≤ 1.03",
            Compared {
                own_cpu: None,
                ..compared
            },
        );
        figure.note = Some(format!(
            "over ssh: an ssh round trip to a forced command that does nothing (`true`) takes \
             {} (median): the part of both sides that is neither dromaius nor virsh; \
             dromaius adds {} to bare virsh",
            ms(median(&mut floor)),
            ms(compared.a.saturating_sub(compared.b)),
        ));
        figure
    }

    fn list(&self, settings: &Settings) -> Figure {
        let compared = interleave(
            settings.rounds,
            true,
            || {
                let run = self.request(&self.list, "lister", "list", "");
                let rows = run.stdout.lines().count();
                assert_eq!(rows, LIST_DOMAINS, "list shows every granted domain");
                run
            },
            || measure(&mut self.virsh(&["list", "--all"]), b"", "bench-0999"),
        );
        Figure::timed(
            "list",
            format!("`list` for a key granted {LIST_DOMAINS} existing domains"),
            "`virsh -c URI list --all`".to_owned(),
            "≤ 0.3",
            compared,
        )
    }

    /// What 10,000 keys add to a request, as a share of what the same 10,000 keys add to
    /// sshd's own login: the fair anchor, since the config is read whole on every request
    /// by design and the same deployment already pays sshd for its keys.
    fn keys(&self, settings: &Settings) -> Figure {
        let request = format!("status {DOMAIN}");
        let ours = interleave(
            settings.rounds,
            true,
            || self.request(&self.big, "alice", &request, "running"),
            || self.request(&self.small, "alice", &request, "running"),
        );
        // Two sshds of their own: one with 10,000 other keys' lines before the key that logs
        // in, one with that line alone. Every line is a dromaius line, as in a deployment.
        let crowded = Sshd::start("");
        let alone = Sshd::start("");
        let mut lines = String::new();
        for k in 0..BIG_KEYS {
            let _ = writeln!(
                lines,
                "command=\"{} --key user-{k:05}\",restrict,pty {}",
                dromaius_bin().display(),
                fake_ed25519(k)
            );
        }
        fs::write(crowded.authorized_keys(), lines).expect("write the crowded authorized_keys");
        let crowded_key = crowded.authorize("true", "restrict");
        let alone_key = alone.authorize("true", "restrict");
        let theirs = interleave(
            settings.ssh_rounds,
            true,
            || measure(&mut crowded.ssh_command(&crowded_key, None), b"", ""),
            || measure(&mut alone.ssh_command(&alone_key, None), b"", ""),
        );
        let ours_cost = ours.a.saturating_sub(ours.b);
        let theirs_cost = theirs.a.saturating_sub(theirs.b);
        let size = fs::metadata(&self.big).map(|m| m.len()).unwrap_or(0);
        Figure {
            name: "keys",
            a: format!(
                "what {BIG_KEYS} keys ({BIG_GRANTS} grants, {:.1} MiB) add to `{request}`: {} \
                 against {} on a 3-key config",
                size as f64 / 1024.0 / 1024.0,
                ms(ours.a),
                ms(ours.b)
            ),
            b: format!(
                "what the same {BIG_KEYS} keys add to sshd's login (`authorized_keys` of {} \
                 lines, the key last): {} against {} with 1 line",
                BIG_KEYS + 1,
                ms(theirs.a),
                ms(theirs.b)
            ),
            median_a: ms(ours_cost),
            median_b: ms(theirs_cost),
            ratio: Some(ours_cost.as_secs_f64() / theirs_cost.as_secs_f64().max(1e-9)),
            goal: "≤ 0.25",
            own_cpu: ours
                .own_cpu
                .map(|cpu| format!("{:.3} ms (10,000-key config)", cpu * 1e3)),
            own_cpu_seconds: None,
            note: None,
        }
    }

    fn memory(&self, settings: &Settings) -> Figure {
        let marks = self.rig.dir().join("vmhwm");
        let fake = fake_virsh(&marks);
        let uri = self.rig.test_uri();
        let socket = self.audit.path().to_path_buf();
        let big = write_file(
            "big-fake.json",
            &config(path_str(&fake), &uri, &socket, BIG_KEYS, BIG_GRANTS),
        );
        let small = write_file(
            "small-fake.json",
            &config(path_str(&fake), &uri, &socket, 3, 4),
        );
        let request = format!("status {DOMAIN}");
        let peak = |config: &Path| -> u64 {
            let _ = fs::remove_file(&marks);
            self.request(config, "alice", &request, "running");
            let text = fs::read_to_string(&marks).unwrap_or_else(|e| {
                panic!("the fake virsh left no VmHWM in {}: {e}", marks.display())
            });
            text.split_whitespace()
                .nth(1)
                .and_then(|kib| kib.parse().ok())
                .unwrap_or_else(|| panic!("unexpected VmHWM line {text:?}"))
        };
        let mut big_kib = Vec::new();
        let mut small_kib = Vec::new();
        for _ in 0..settings.rounds.min(9) {
            big_kib.push(peak(&big));
            small_kib.push(peak(&small));
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        Figure {
            name: "memory",
            a: format!("peak RSS of dromaius itself (VmHWM), `{request}` on the big config"),
            b: "(the same on the 3-key config, for scale)".to_owned(),
            median_a: format!("{:.1} MiB", mib(median(&mut big_kib))),
            median_b: format!("{:.1} MiB", mib(median(&mut small_kib))),
            ratio: None,
            goal: "A ≤ 10 MiB",
            own_cpu: None,
            own_cpu_seconds: None,
            note: None,
        }
    }

    /// 10,000 keys spread over 1,000 files of `dromaius.d`, against the same keys in one
    /// file: what config management's one file per person or team costs.
    fn drop_ins(&self, settings: &Settings) -> Figure {
        let request = format!("status {DOMAIN}");
        let uri = self.rig.test_uri();
        let socket = self.audit.path().to_path_buf();
        let dir = common::support::make_temp_dir("drop-ins");
        let main = dir.join("dromaius.json");
        fs::write(&main, config(VIRSH, &uri, &socket, 1, 2)).expect("write the main config");
        let drop_ins = dir.join("dromaius.d");
        fs::create_dir(&drop_ins).expect("create dromaius.d");
        fs::set_permissions(&drop_ins, fs::Permissions::from_mode(0o755)).expect("chmod");
        let keys_per_file = (BIG_KEYS - 1) / 1000 + 1;
        let mut written = 0;
        for file in 0..1000 {
            let mut text = String::from("{\"keys\": {\n");
            let mut entries = Vec::new();
            for _ in 0..keys_per_file {
                if written >= BIG_KEYS - 1 {
                    break;
                }
                entries.push(format!(
                    "  \"user-{written:05}\": [\n    {{ \"domains\": [\"user-{written:05}-*\", \"shared-{}\"], \"commands\": [\"start\", \"shutdown\", \"status\", \"console\"] }},\n    {{ \"domains\": [\"lab-{written:05}-[0-9]\"], \"connect\": \"test:///default\" }}\n  ]",
                    written % 100
                ));
                written += 1;
            }
            text.push_str(&entries.join(",\n"));
            text.push_str("\n}}\n");
            fs::write(drop_ins.join(format!("user-{file:04}.json")), text)
                .expect("write a drop-in");
        }
        let compared = interleave(
            settings.rounds,
            true,
            || self.request(&main, "alice", &request, "running"),
            || self.request(&self.big, "alice", &request, "running"),
        );
        Figure::timed(
            "drop-ins",
            format!("`{request}`, {BIG_KEYS} keys over 1000 files of dromaius.d"),
            format!("the same {BIG_KEYS} keys in one file"),
            "report",
            compared,
        )
    }

    /// `list` for a key granted three hypervisors, one of them remote, against the slowest
    /// of the three alone (the remote one): the three are asked at once.
    fn fleet_list(&self, settings: &Settings, remote: &Remote) -> Figure {
        let compared = interleave(
            settings.ssh_rounds,
            true,
            || self.request(&remote.fleet_config, "ops", "list", "bench-remote"),
            || self.request(&remote.alone_config, "ops", "list", "bench-remote"),
        );
        Figure::timed(
            "fleet list",
            format!(
                "`list` for a key granted 3 hypervisors: {} domains, 3, and 2 reached over ssh",
                LIST_DOMAINS + 1
            ),
            "the same on the remote one alone (the slowest of the three)".to_owned(),
            "≤ 1.3",
            compared,
        )
    }

    /// `status` of a domain on a hypervisor reached over ssh, against bare virsh over the
    /// same URI.
    fn remote_status(&self, settings: &Settings, remote: &Remote) -> Figure {
        let compared = interleave(
            settings.ssh_rounds,
            true,
            || {
                self.request(
                    &remote.alone_config,
                    "ops",
                    "status bench-remote",
                    "running",
                )
            },
            || {
                let mut virsh = Command::new(VIRSH);
                virsh
                    .args([
                        "--connect",
                        &remote.uri,
                        "--readonly",
                        "domstate",
                        "--domain",
                    ])
                    .arg("bench-remote")
                    .env_clear()
                    .env("PATH", CLEAN_PATH)
                    .env("HOME", "/nonexistent")
                    .env("LC_ALL", "C")
                    .current_dir("/");
                measure(&mut virsh, b"", "running")
            },
        );
        Figure::timed(
            "remote status",
            "dromaius `status bench-remote` on a hypervisor reached over ssh".to_owned(),
            "`virsh --connect URI domstate bench-remote`, the same URI".to_owned(),
            "≤ 1.10",
            compared,
        )
    }

    fn session(&self, settings: &Settings) -> Figure {
        let n = settings.session_requests;
        let request = format!("status {DOMAIN}");
        let lines = format!("{request}\n").repeat(n);
        let check = |run: &Run| {
            assert_eq!(
                run.stdout.matches("running").count(),
                n,
                "every request answered"
            );
        };
        // Each side is already the sum of many requests: no warm-up round (it would double
        // the longest figure of the run).
        let compared = interleave(
            settings.session_rounds,
            false,
            || {
                let run = self.login(&self.gateway_key, None, lines.as_bytes());
                check(&run);
                run
            },
            || {
                let run =
                    Run::sum((0..n).map(|_| self.login(&self.gateway_key, Some(&request), b"")));
                check(&run);
                run
            },
        );
        Figure::timed(
            "session",
            format!("{n} piped `{request}` lines in one `ssh gw` session"),
            format!("{n} one-shot `ssh gw {request}`"),
            "report (well under 1.0)",
            Compared {
                own_cpu: None,
                ..compared
            },
        )
    }
}

/// A user's own libvirt client reaching the rig's hypervisor through ssh: through the
/// gateway (the `list` figure's key, granted the thousand `bench-NNNN` domains), or through
/// an unfiltered relay (a key whose forced command is `socat` to the daemon's socket).
struct Clients {
    home: PathBuf,
    gateway: SshKey,
    unfiltered: SshKey,
    /// The gateway's key again, its forced command wrapped so that its peak memory is
    /// written to `peak` while it runs.
    watched: SshKey,
    peak: PathBuf,
}

/// python3-libvirt taking `N` screenshots of one domain over one connection, counting the
/// bytes of every stream.
const SCREENSHOTS: &str = r#"
import libvirt, sys
conn = libvirt.open(sys.argv[1])
dom = conn.lookupByName(sys.argv[2])
total = 0
for i in range(int(sys.argv[3])):
    stream = conn.newStream(0)
    dom.screenshot(stream, 0, 0)
    while True:
        data = stream.recv(262144)
        if not data:
            break
        total += len(data)
    stream.finish()
conn.close()
print("bytes", total)
"#;

impl Clients {
    fn new(bench: &Bench) -> Clients {
        let rig = bench.rig;
        let socat = format!("/usr/bin/socat - UNIX-CONNECT:{}", rig.socket().display());
        let home = dromaius_rig::support::make_temp_dir("bench-client");
        let peak = home.join("peak");
        // The shell notes its own VmHWM, which after `exec` is dromaius's, every 10 ms until
        // it is gone (a connection of 30 screenshots lasts about 50 ms).
        let wrapper = write_file(
            "watched-gateway",
            &format!(
                "#!/bin/sh\n( while grep VmHWM /proc/$$/status > '{}.new' 2>/dev/null \
                 && mv '{}.new' '{}'; do sleep 0.01; done ) &\nexec '{}' --config '{}' --key lister\n",
                peak.display(),
                peak.display(),
                peak.display(),
                dromaius_bin().display(),
                bench.list.display()
            ),
        );
        make_executable(&wrapper);
        Clients {
            gateway: rig.authorize_gateway(&bench.list, "lister", "restrict"),
            unfiltered: rig.authorize(&socat, "restrict"),
            watched: rig.authorize(&wrapper.display().to_string(), "restrict"),
            home,
            peak,
        }
    }

    /// libvirt's URI for the rig's hypervisor through ssh with `key` (netcat mode: the
    /// forced command, not the socket named here, decides where it goes).
    fn uri(&self, bench: &Bench, key: &SshKey) -> String {
        format!(
            "test+ssh://root@127.0.0.1:{}/default?keyfile={}&no_verify=1&socket=/var/run/libvirt/libvirt-sock",
            bench.rig.ssh_port(),
            key.private.display()
        )
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", CLEAN_PATH)
            .env("HOME", &self.home)
            .env("LC_ALL", "C");
        command
    }
}

impl Bench {
    /// `virsh list --all` of a thousand domains through the gateway, against the same through
    /// an unfiltered relay.
    fn rpc_list(&self, settings: &Settings, clients: &Clients) -> Figure {
        let run = |key: &SshKey| {
            let mut command = clients.command(VIRSH);
            command
                .arg("-c")
                .arg(clients.uri(self, key))
                .args(["list", "--all", "--name"]);
            measure(&mut command, b"", "bench-0999")
        };
        let compared = interleave(
            settings.ssh_rounds,
            true,
            || {
                let out = run(&clients.gateway);
                let names = out.stdout.lines().filter(|l| !l.is_empty()).count();
                assert_eq!(
                    names, LIST_DOMAINS,
                    "the gateway shows the key's domains only"
                );
                out
            },
            || run(&clients.unfiltered),
        );
        self.drain();
        Figure::timed(
            "rpc-list",
            format!(
                "`virsh -c test+ssh://... list --all` through the gateway, {LIST_DOMAINS} granted"
            ),
            "the same through an unfiltered relay (`socat` to the daemon's socket)".into(),
            "≤ 1.10",
            Compared {
                own_cpu: None,
                ..compared
            },
        )
    }

    /// 10 MiB of screenshot streams (300 of the test driver's 33 KiB screenshot over one
    /// connection) through the gateway, against an unfiltered relay; and the relay's memory.
    fn rpc_screenshots(&self, settings: &Settings, clients: &Clients) -> Figure {
        let count = if settings.quick { "30" } else { "300" };
        let run = |key: &SshKey| {
            let mut command = clients.command("/usr/bin/python3");
            command
                .args(["-c", SCREENSHOTS])
                .arg(clients.uri(self, key))
                .args(["bench-0000", count]);
            let out = measure(&mut command, b"", "bytes");
            assert!(
                !out.stdout.contains("bytes 0\n"),
                "screenshots came: {}",
                out.stdout
            );
            out
        };
        let compared = interleave(
            settings.ssh_rounds.min(11),
            true,
            || run(&clients.gateway),
            || run(&clients.unfiltered),
        );
        // The relay's peak memory after a short connection and after one ten times as long.
        let peak = |screenshots: &str| {
            let _ = fs::remove_file(&clients.peak);
            let mut command = clients.command("/usr/bin/python3");
            command
                .args(["-c", SCREENSHOTS])
                .arg(clients.uri(self, &clients.watched))
                .args(["bench-0000", screenshots]);
            measure(&mut command, b"", "bytes");
            fs::read_to_string(&clients.peak)
                .unwrap_or_default()
                .split_whitespace()
                .nth(1)
                .unwrap_or("?")
                .to_owned()
        };
        let (short, long) = (peak("30"), peak("300"));
        self.drain();
        let mut figure = Figure::timed(
            "rpc-screenshots",
            format!(
                "{count} screenshots of 33 KiB (300: 10 MiB) over one connection through the gateway"
            ),
            "the same through an unfiltered relay".into(),
            "≤ 1.10",
            Compared {
                own_cpu: None,
                ..compared
            },
        );
        figure.note = Some(format!(
            "rpc-screenshots: the gateway's peak memory (VmHWM) was {short} kB over 30 \
             screenshots and {long} kB over 300 (1 MiB and 10 MiB of streams)"
        ));
        figure
    }
}

/// A syslog that takes 15 ms a record, as a loaded journald does, and a config of the
/// small kind that sends its records there.
struct SlowSyslog {
    _dir: PathBuf,
    config: PathBuf,
    received: Arc<AtomicUsize>,
}

/// What one record costs the slow syslog.
const SLOW_RECORD: Duration = Duration::from_millis(15);

impl SlowSyslog {
    fn start(bench: &Bench) -> SlowSyslog {
        let dir = dromaius_rig::support::make_temp_dir("slow-syslog");
        let path = dir.join("log");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind slow syslog");
        let received = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&received);
        thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while socket.recv(&mut buffer).is_ok() {
                thread::sleep(SLOW_RECORD);
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let config = write_file(
            "slow-syslog.json",
            &config(VIRSH, &bench.rig.test_uri(), &path, 3, 4),
        );
        SlowSyslog {
            _dir: dir,
            config,
            received,
        }
    }
}

impl Bench {
    /// A piped session of `lines`, directly as sshd runs it, on `config`.
    fn piped(&self, config: &Path, lines: &str) -> Run {
        let mut command = self.dromaius(config, "alice", "");
        command.env_remove("SSH_ORIGINAL_COMMAND");
        measure(&mut command, lines.as_bytes(), "running")
    }

    /// What a flood of 300 refused lines costs its session when syslog takes 15 ms a
    /// record: its records are rate-limited, so next to nothing.
    fn slow_syslog_flood(&self, settings: &Settings, slow: &SlowSyslog) -> Figure {
        let lines = format!("{}status {DOMAIN}\n", "bogus\n".repeat(300));
        let compared = interleave(
            settings.rounds.min(21),
            true,
            || self.piped(&slow.config, &lines),
            || {
                self.drain();
                self.piped(&self.small, &lines)
            },
        );
        Figure::timed(
            "slow-syslog",
            "300 invalid lines and a `status` in one session, syslog taking 15 ms a record".into(),
            "the same with a syslog that keeps up".into(),
            "report",
            Compared {
                own_cpu: None,
                ..compared
            },
        )
    }

    /// What a slow syslog costs requests that acted, whose records are never dropped: a
    /// session of 50 `status` lines waits for syslog's pace once its queue is full.
    fn slow_syslog_acting(&self, settings: &Settings, slow: &SlowSyslog) -> Figure {
        let lines = format!("status {DOMAIN}\n").repeat(50);
        let before = slow.received.load(Ordering::SeqCst);
        let compared = interleave(
            settings.rounds.min(11),
            true,
            || self.piped(&slow.config, &lines),
            || {
                self.drain();
                self.piped(&self.small, &lines)
            },
        );
        // Let the slow syslog catch up, then check no record of those requests was lost.
        // The warm-up round, then every measured one.
        let sessions = settings.rounds.min(11) + 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        while slow.received.load(Ordering::SeqCst) < before + 50 * sessions
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(50));
        }
        let got = slow.received.load(Ordering::SeqCst) - before;
        let mut figure = Figure::timed(
            "slow-acting",
            "50 `status` lines in one session, syslog taking 15 ms a record".into(),
            "the same with a syslog that keeps up".into(),
            "report",
            Compared {
                own_cpu: None,
                ..compared
            },
        );
        figure.note = Some(format!(
            "slow-acting: the slow syslog received {got} records of {} sessions of 50 requests",
            sessions
        ));
        figure
    }
}

/// A hypervisor reached the way a remote one is, through libvirt's ssh transport to the
/// rig's sshd (whose forced command for the transport's key is the daemon's socket), and
/// the configs of the fleet figures.
struct Remote {
    _libvirtd: Libvirtd,
    uri: String,
    /// `ops` granted the rig's hypervisor, the small one and this one.
    fleet_config: PathBuf,
    /// `ops` granted this one only.
    alone_config: PathBuf,
}

impl Remote {
    fn new(bench: &Bench) -> Remote {
        let rig = bench.rig;
        let libvirtd = Libvirtd::start();
        define(
            &libvirtd,
            &["bench-remote".to_owned(), "bench-remote-2".to_owned()],
            |i| i == 0,
        );
        let socket = libvirtd.socket().display().to_string();
        let key = rig.authorize(&format!("/usr/bin/nc.openbsd -U {socket}"), "restrict");
        // virsh runs ssh with this host key pinned, and reads and writes nothing of root's.
        let known_hosts = write_file(
            "bench-known-hosts",
            &format!("{}\n", rig.sshd().known_hosts_line()),
        );
        let ssh = write_file(
            "bench-ssh",
            &format!(
                "#!/bin/sh\nexec /usr/bin/ssh -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes \"$@\"\n",
                known_hosts.display()
            ),
        );
        make_executable(&ssh);
        let uri = format!(
            "test+ssh://root@127.0.0.1:{}/default?keyfile={}&socket={socket}&proxy=netcat&command={}",
            rig.ssh_port(),
            key.private.display(),
            ssh.display()
        );
        let socket_path = bench.audit.path().display().to_string();
        let fleet = |connect: &str| {
            format!(
                r#"{{"virsh": "{VIRSH}", "hypervisors": {{"big": "{}", "small": "{}", "far": "{uri}"}},
                    "syslog_socket": "{socket_path}", "keys": {{"ops": [{{"domains": ["*"], "connect": {connect}}}]}}}}"#,
                rig.test_uri(),
                bench.small_host.test_uri(),
            )
        };
        Remote {
            fleet_config: write_file("fleet.json", &fleet(r#"["big", "small", "far"]"#)),
            alone_config: write_file("far.json", &fleet(r#""far""#)),
            uri,
            _libvirtd: libvirtd,
        }
    }
}

/// Defines the test-driver domains `names` and starts those whose index `start` picks: a
/// few virsh calls of a hundred commands each, since the test driver is fast and one virsh
/// per domain would take most of a minute.
fn define(libvirtd: &Libvirtd, names: &[String], start: impl Fn(usize) -> bool) {
    for (chunk_index, chunk) in names.chunks(100).enumerate() {
        let mut defines = String::new();
        let mut starts = String::new();
        for (i, name) in chunk.iter().enumerate() {
            let xml = format!(
                "<domain type='test'><name>{name}</name><memory>65536</memory>\
                 <os><type>hvm</type></os></domain>\n"
            );
            let file = write_file("domain.xml", &xml);
            let _ = write!(defines, "define --file {} ; ", file.display());
            if start(chunk_index * 100 + i) {
                let _ = write!(starts, "start {name} ; ");
            }
        }
        libvirtd.virsh_ok(&[&defines]);
        if !starts.is_empty() {
            libvirtd.virsh_ok(&[&starts]);
        }
    }
    let listing = libvirtd.virsh_ok(&["list", "--all", "--name"]);
    for name in names {
        assert!(listing.lines().any(|l| l == name), "{name} is defined");
    }
}

/// A config with `keys` keys and `grants` grants in all, one grant per line as an
/// administrator would write it. The last key is `alice`, whose grants are the same
/// whatever the size, so that only the size of the file differs between configs.
fn config(virsh: &str, uri: &str, socket: &Path, keys: usize, grants: usize) -> String {
    assert!(keys >= 1 && grants >= 2, "alice has two grants");
    let mut text = format!(
        "{{\n  \"virsh\": \"{virsh}\",\n  \"connect\": \"{uri}\",\n  \"timeout_secs\": 60,\n  \
         \"syslog_socket\": \"{}\",\n  \"keys\": {{\n",
        socket.display()
    );
    let others = keys - 1;
    let mut left = grants - 2;
    for k in 0..others {
        // Spread the grants over the other keys as evenly as they go.
        let mine = left / (others - k);
        left -= mine;
        let _ = writeln!(text, "    \"user-{k:05}\": [");
        for g in 0..mine {
            let comma = if g + 1 < mine { "," } else { "" };
            let line = match g % 2 {
                0 => format!(
                    "      {{ \"domains\": [\"user-{k:05}-*\", \"shared-{}\"], \"commands\": [\"start\", \"shutdown\", \"status\", \"console\"] }}{comma}",
                    k % 100
                ),
                _ => format!(
                    "      {{ \"domains\": [\"lab-{k:05}-[0-9]\"], \"connect\": \"test:///default\" }}{comma}"
                ),
            };
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str("    ],\n");
    }
    let _ = write!(
        text,
        "    \"alice\": [\n      \
         {{ \"domains\": [\"alice-*\", \"shared-db\"], \"commands\": [\"start\", \"shutdown\", \"reboot\", \"console\", \"status\"] }},\n      \
         {{ \"domains\": [\"{DOMAIN}\"], \"commands\": [\"status\"] }}\n    ]\n  }}\n}}\n"
    );
    text
}

/// Key `lister` granted `LIST_DOMAINS` domains by name (the worst case for matching: no
/// glob covers them), which all exist; a second key so that the file is not trivial.
fn list_config(uri: &str, socket: &Path) -> String {
    let names: Vec<String> = (0..LIST_DOMAINS)
        .map(|i| format!("\"bench-{i:04}\""))
        .collect();
    format!(
        "{{\n  \"virsh\": \"{VIRSH}\",\n  \"connect\": \"{uri}\",\n  \"syslog_socket\": \"{}\",\n  \"keys\": {{\n    \
 \"lister\": [ {{ \"domains\": [{}], \"commands\": [\"status\", \"start\", \"screenshot\"] }} ],\n    \
         \"other\": [ {{ \"domains\": [\"other-*\"] }} ]\n  }}\n}}\n",
        socket.display(),
        names.join(", ")
    )
}

/// A stand-in for virsh that answers instantly, and records its parent's (dromaius's)
/// peak RSS when asked for a domain's state — the last thing a `status` request does.
fn fake_virsh(marks: &Path) -> PathBuf {
    let script = format!(
        "#!/bin/sh\n\
         # Written by benches/gateway.rs: answers dromaius like virsh, records its VmHWM.\n\
         case \" $* \" in\n  \
           *\" list \"*) printf '6695eb01-f6a4-8304-79aa-97f2502e193f - {DOMAIN}\\n\\n' ;;\n  \
           *\" domstate \"*) grep VmHWM /proc/$PPID/status > '{}'; printf 'running\\n\\n' ;;\n  \
           *) echo \"fake virsh: unexpected $*\" >&2; exit 1 ;;\n\
         esac\n",
        marks.display()
    );
    let path = write_file("fake-virsh", &script);
    make_executable(&path);
    path
}

/// What starting any program at all costs here, for scale: `/bin/true`, timed and read the
/// same way as dromaius. Of dromaius's own CPU per request, this much is exec, the dynamic
/// loader and exit, not dromaius's work.
struct Floor {
    note: String,
}

fn exec_floor(settings: &Settings) -> Floor {
    let mut cpus = Vec::new();
    let mut walls = Vec::new();
    for _ in 0..settings.rounds {
        let run = measure(Command::new("/bin/true").env_clear(), b"", "");
        walls.push(run.wall);
        cpus.extend(run.own_cpu);
    }
    let cpu = (!cpus.is_empty()).then(|| median(&mut cpus));
    let shown = cpu.map_or_else(|| "?".to_owned(), |c| format!("{:.3} ms", c * 1e3));
    Floor {
        note: format!(
            "exec floor: `/bin/true` costs {shown} of CPU and {} of wall time (medians): that \
             much of each figure above is starting a process at all",
            ms(median(&mut walls))
        ),
    }
}

/// dromaius's own CPU on the one-shot request, less what any process costs to start
/// (`/bin/true`, started in the same rounds).
fn own_cpu_figure(figures: &[Figure], floor_cpu: Option<f64>) -> Option<Figure> {
    let one_shot = figures.iter().find(|f| f.name == "one-shot")?;
    let own = one_shot.own_cpu_seconds?;
    let floor_cpu = floor_cpu?;
    Some(Figure {
        name: "cpu",
        a: "dromaius's own CPU on a one-shot `status`, less the exec floor".to_owned(),
        b: "`/bin/true` (the exec floor)".to_owned(),
        median_a: format!("{:.3} ms", (own - floor_cpu) * 1e3),
        median_b: format!("{:.3} ms", floor_cpu * 1e3),
        ratio: None,
        goal: "A ≤ 1 ms",
        own_cpu: None,
        own_cpu_seconds: None,
        note: None,
    })
}

/// An OpenSSH ed25519 public key line's type and key data, different for every `n`: what
/// sshd reads and compares for each line of `authorized_keys` (any 32 bytes are a key to it).
fn fake_ed25519(n: usize) -> String {
    let mut blob = Vec::with_capacity(51);
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    let mut state = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef;
    for _ in 0..32 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        blob.push(state as u8);
    }
    format!("ssh-ed25519 {} bench-{n}", base64(&blob))
}

/// Standard base64 with padding (RFC 4648), for [`fake_ed25519`].
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let word = u32::from(chunk[0]) << 16
            | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(char::from(ALPHABET[(word >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU, cores, memory, kernel, OS and the versions of what is measured.
fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "?".into());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kib: f64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "?".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "?".into());
    let version = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text).trim().to_owned()
            })
            .unwrap_or_else(|_| "?".into())
    };
    format!(
        "machine: {model}, {cores} cores, {memory}; {os}, Linux {}; libvirt (virsh) {}; {}",
        kernel.trim(),
        version(VIRSH, "--version"),
        version("/usr/bin/ssh", "-V"),
    )
}
