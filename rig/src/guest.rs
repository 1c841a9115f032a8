//! A real guest with a serial console, for the `console` tests: a 512-byte x86 boot
//! sector on a read-only 1.44 MB floppy, run by QEMU (TCG) under a session libvirtd.
//!
//! Only `std`, and `nix` to kill QEMU processes left by dead test binaries.
//!
//! The guest prints `"\r\nECHO-READY\r\n> "` on COM1, echoes every byte it receives
//! (CR as CR LF) and, on CR or LF, prints `"ECHO: <line>\r\n> "`. Every byte it reads from
//! the keyboard controller is reported on COM1 as `"KEY:xx "` (scancode set 1, two
//! lowercase hex digits), while it waits for serial input, so a test sees keys arrive
//! (Ctrl+Alt+Del: `KEY:1d KEY:38 KEY:e0 KEY:53 KEY:e0 KEY:d3 KEY:b8 KEY:9d `); it never
//! reboots on them. It idles in HLT, so an idle guest costs ~0% CPU. No image is
//! downloaded: the bytes live here. With [`Graphics::Vnc`] it also has a VGA screen that
//! QEMU serves over VNC (720x400 text mode, desktop name `QEMU (NAME)`).
//!
//! How to use it (measured with libvirt 9.0 + QEMU 10.0.2 from bookworm-backports):
//! - the floppy image must be readable by the user the session libvirtd runs as
//!   (`nobody`): put it inside the daemon's own directory `D` (owned by nobody, every
//!   parent 0755), not in a 0700 `mktemp -d` of root's;
//! - `virsh console` needs a real TTY on stdin; [`Guest::attach`] waits until the guest
//!   answers and has everything typed so far (bytes typed before virsh switches the
//!   terminal to raw mode are lost, and output printed while nobody is attached is
//!   discarded); `Ctrl+]` (0x1d) ends virsh with exit 0 only as the first byte virsh reads
//!   at once, so it must not follow other typing too closely.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Size of a 1.44 MB floppy image: 80 cylinders x 2 heads x 18 sectors x 512 bytes.
pub const FLOPPY_SIZE: u64 = 1_474_560;

/// The banner the guest prints once after boot.
pub const BANNER: &str = "\r\nECHO-READY\r\n> ";
/// The prompt the guest prints after the banner and after every line.
pub const PROMPT: &str = "> ";

/// The code and data of the boot sector: `nasm -f bin echo-boot.asm` (nasm 2.16.01), bytes
/// 0..353. Everything after is zero up to the 0x55 0xAA signature at 510..512.
/// Source: `rig/src/echo-boot.asm`.
/// sha256 of the whole 512-byte sector:
/// ee0818b48e1cd225eeef79d67553747afb5ad59af62f2b2ba3dc10ed1d3a6ce7
///
/// Layout: 0x000 start (cli; segments; IVT[0x0C] = irq4, IVT[0x09] = irq1; ring indices =
/// 0), 0x02b drain (read port 0x60 while 0x64 bit 0), 0x035 UART 115200 8N1, RX interrupt,
/// FIFO; unmask IRQ4 and IRQ1, 0x06c `mov si, banner; call puts`, 0x072 `reset_line`, 0x075
/// `mainloop`, 0x08c eol, 0x0a3 getc (CLI; key pending? report; LSR.DR? read; else
/// STI;HLT), 0x0c5 report ("KEY:" + 2 hex digits + " "), 0x0ec hexdig, 0x0f6 irq4 (EOI),
/// 0x0fd irq1 (0x64 bit 0? read 0x60 into the ring at 0x700 unless full; EOI), 0x128 putc,
/// 0x137 puts, 0x142 `"\r\nECHO-READY"`, 0x14e `"\r\n> \0"`, 0x153 `"\r\nECHO: \0"`, 0x15c
/// `"KEY:\0"`.
const ECHO_BOOT_CODE: [u8; 353] = [
    0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0xbc, 0x00, 0x7c, 0xfc, 0xc7, 0x06, 0x30,
    0x00, 0xf6, 0x7c, 0xc7, 0x06, 0x32, 0x00, 0x00, 0x00, 0xc7, 0x06, 0x24, 0x00, 0xfd, 0x7c, 0xc7,
    0x06, 0x26, 0x00, 0x00, 0x00, 0xc7, 0x06, 0xfe, 0x06, 0x00, 0x00, 0xe4, 0x64, 0xa8, 0x01, 0x74,
    0x04, 0xe4, 0x60, 0xeb, 0xf6, 0xba, 0xf9, 0x03, 0x30, 0xc0, 0xee, 0xba, 0xfb, 0x03, 0xb0, 0x80,
    0xee, 0xba, 0xf8, 0x03, 0xb0, 0x01, 0xee, 0xba, 0xf9, 0x03, 0x30, 0xc0, 0xee, 0xba, 0xfb, 0x03,
    0xb0, 0x03, 0xee, 0xba, 0xf9, 0x03, 0xb0, 0x01, 0xee, 0xba, 0xfa, 0x03, 0xb0, 0x07, 0xee, 0xba,
    0xfc, 0x03, 0xb0, 0x0b, 0xee, 0xe4, 0x21, 0x24, 0xed, 0xe6, 0x21, 0xfb, 0xbe, 0x42, 0x7d, 0xe8,
    0xc5, 0x00, 0xbf, 0x00, 0x06, 0xe8, 0x2b, 0x00, 0x3c, 0x0d, 0x74, 0x10, 0x3c, 0x0a, 0x74, 0x0c,
    0xe8, 0xa5, 0x00, 0x81, 0xff, 0xc8, 0x06, 0x73, 0xec, 0xaa, 0xeb, 0xe9, 0xc6, 0x05, 0x00, 0xbe,
    0x53, 0x7d, 0xe8, 0xa2, 0x00, 0xbe, 0x00, 0x06, 0xe8, 0x9c, 0x00, 0xbe, 0x4e, 0x7d, 0xe8, 0x96,
    0x00, 0xeb, 0xcf, 0xfa, 0xa0, 0xff, 0x06, 0x3a, 0x06, 0xfe, 0x06, 0x75, 0x0c, 0xba, 0xfd, 0x03,
    0xec, 0xa8, 0x01, 0x75, 0x0a, 0xfb, 0xf4, 0xeb, 0xea, 0xfb, 0xe8, 0x08, 0x00, 0xeb, 0xe4, 0xfb,
    0xba, 0xf8, 0x03, 0xec, 0xc3, 0x31, 0xdb, 0x8a, 0x1e, 0xff, 0x06, 0x8a, 0xa7, 0x00, 0x07, 0xfe,
    0x06, 0xff, 0x06, 0xbe, 0x5c, 0x7d, 0xe8, 0x5e, 0x00, 0x88, 0xe0, 0xc0, 0xe8, 0x04, 0xe8, 0x0b,
    0x00, 0x88, 0xe0, 0x24, 0x0f, 0xe8, 0x04, 0x00, 0xb0, 0x20, 0xeb, 0x3c, 0x04, 0x30, 0x3c, 0x39,
    0x76, 0x36, 0x04, 0x27, 0xeb, 0x32, 0x50, 0xb0, 0x20, 0xe6, 0x20, 0x58, 0xcf, 0x50, 0x53, 0xe4,
    0x64, 0xa8, 0x01, 0x74, 0x1c, 0xe4, 0x60, 0x31, 0xdb, 0x2e, 0x8a, 0x1e, 0xfe, 0x06, 0x2e, 0x88,
    0x87, 0x00, 0x07, 0xfe, 0xc3, 0x2e, 0x3a, 0x1e, 0xff, 0x06, 0x74, 0x05, 0x2e, 0x88, 0x1e, 0xfe,
    0x06, 0xb0, 0x20, 0xe6, 0x20, 0x5b, 0x58, 0xcf, 0x50, 0xba, 0xfd, 0x03, 0xec, 0xa8, 0x20, 0x74,
    0xfb, 0x58, 0xba, 0xf8, 0x03, 0xee, 0xc3, 0xac, 0x84, 0xc0, 0x74, 0x05, 0xe8, 0xe9, 0xff, 0xeb,
    0xf6, 0xc3, 0x0d, 0x0a, 0x45, 0x43, 0x48, 0x4f, 0x2d, 0x52, 0x45, 0x41, 0x44, 0x59, 0x0d, 0x0a,
    0x3e, 0x20, 0x00, 0x0d, 0x0a, 0x45, 0x43, 0x48, 0x4f, 0x3a, 0x20, 0x00, 0x4b, 0x45, 0x59, 0x3a,
    0x00,
];

/// The 512-byte boot sector: prints `"\r\nECHO-READY\r\n> "` on COM1 and echoes input, as
/// in `rig/src/echo-boot.asm`. Assembled once with `nasm -f bin`; see
/// [`ECHO_BOOT_CODE`] for the bytes and their layout.
pub const ECHO_BOOT_SECTOR: [u8; 512] = {
    let mut sector = [0u8; 512];
    let mut i = 0;
    while i < ECHO_BOOT_CODE.len() {
        sector[i] = ECHO_BOOT_CODE[i];
        i += 1;
    }
    sector[510] = 0x55;
    sector[511] = 0xaa;
    sector
};

/// Writes a 1.44 MB floppy image (boot sector + zero padding to 1474560 bytes) at `path`,
/// mode 0644 (whatever the umask), replacing any file there. Panics on any I/O error.
///
/// QEMU runs as the session libvirtd's user and opens the image itself, so every directory
/// above `path` must be traversable (x) by that user.
pub fn write_floppy(path: &Path) {
    let fail = |what: &str, e: std::io::Error| -> ! {
        panic!("write_floppy: {what} {}: {e}", path.display())
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .unwrap_or_else(|e| fail("cannot create", e));
    f.write_all(&ECHO_BOOT_SECTOR)
        .unwrap_or_else(|e| fail("cannot write", e));
    // The rest of the image is zeros: extend the file (sparse) to the full floppy size.
    f.set_len(FLOPPY_SIZE)
        .unwrap_or_else(|e| fail("cannot extend", e));
    f.sync_all().unwrap_or_else(|e| fail("cannot sync", e));
    // `mode()` is filtered by the umask and ignored for an existing file: set it exactly.
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| fail("cannot chmod", e));
}

/// The graphical console a guest has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graphics {
    /// None: serial only.
    None,
    /// VNC on 127.0.0.1, the port libvirt picks (5900 + N), and a VGA card.
    Vnc,
    /// VNC on a unix socket libvirt places in the domain's own directory, and a VGA card.
    VncSocket,
    /// SPICE on 127.0.0.1, the port libvirt picks, and a VGA card.
    Spice,
    /// SPICE on a unix socket libvirt places in the domain's own directory.
    SpiceSocket,
}

/// The domain XML (type='qemu', floppy boot, `<serial type='pty'>`, `<console>`, `<acpi/>`,
/// memballoon none) for `name` booting `image`.
///
/// `image` is made absolute against the current directory if it is relative (libvirt
/// needs an absolute path) and must be valid UTF-8. `name` and the path are XML-escaped.
/// `<acpi/>` is required: without it libvirt 9.0 passes `-no-acpi`, which QEMU 10 rejects.
pub fn echo_domain_xml(name: &str, image: &Path) -> String {
    echo_domain_xml_with(name, image, Graphics::None)
}

/// [`echo_domain_xml`], with a graphical console.
pub fn echo_domain_xml_with(name: &str, image: &Path, graphics: Graphics) -> String {
    let image: PathBuf = std::path::absolute(image)
        .unwrap_or_else(|e| panic!("echo_domain_xml: {}: {e}", image.display()));
    let image = image.to_str().unwrap_or_else(|| {
        panic!(
            "echo_domain_xml: image path is not UTF-8: {}",
            image.display()
        )
    });
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='fd'/>
  </os>
  <features>
    <acpi/>
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='floppy'>
      <driver name='qemu' type='raw'/>
      <source file='{image}'/>
      <target dev='fda' bus='fdc'/>
      <readonly/>
    </disk>
    <serial type='pty'>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
{graphics}    <memballoon model='none'/>
  </devices>
</domain>
",
        name = xml_escape(name),
        image = xml_escape(image),
        graphics = match graphics {
            Graphics::None => "",
            Graphics::Vnc => {
                "    <graphics type='vnc' port='-1' listen='127.0.0.1'/>\n    <video><model type='vga'/></video>\n"
            }
            Graphics::VncSocket => {
                "    <graphics type='vnc'><listen type='socket'/></graphics>\n    <video><model type='vga'/></video>\n"
            }
            Graphics::Spice => {
                "    <graphics type='spice' port='-1' autoport='yes' listen='127.0.0.1'/>\n    <video><model type='vga'/></video>\n"
            }
            Graphics::SpiceSocket => {
                "    <graphics type='spice'><listen type='socket'/></graphics>\n    <video><model type='vga'/></video>\n"
            }
        },
    )
}

/// Escapes text for an XML element body or a single- or double-quoted attribute.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// An echo guest defined on the rig's session QEMU driver ([`super::Rig::qemu_uri`]),
/// destroyed and undefined when dropped, so that no QEMU outlives its test. (A session
/// libvirtd killed with the test binary leaves its QEMU processes running: a test binary
/// that died without dropping its guests is swept by the next one, see [`sweep_orphans`].)
pub struct Guest {
    rig: &'static super::Rig,
    pub name: String,
    uri: String,
}

impl Guest {
    /// Writes the floppy image into the daemon's own directory (readable by `nobody`) and
    /// defines the domain `name` (unique per test). It is left shut off.
    pub fn define(rig: &'static super::Rig, name: &str) -> Guest {
        Guest::define_with(rig, name, Graphics::None)
    }

    /// [`Guest::define`], with a graphical console.
    pub fn define_with(rig: &'static super::Rig, name: &str, graphics: Graphics) -> Guest {
        const QEMU: &str = "/usr/bin/qemu-system-x86_64";
        assert!(
            Path::new(QEMU).exists(),
            "{QEMU} is missing: install Debian's qemu-system-x86 (scripts/install-qemu.sh \
             does, from bookworm-backports)"
        );
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_orphans);
        let images = rig.dir().join("d").join("images");
        fs::create_dir_all(&images).expect("create the images dir");
        fs::set_permissions(&images, fs::Permissions::from_mode(0o755)).expect("chmod images");
        let image = images.join(format!("{name}.img"));
        write_floppy(&image);
        let xml = super::write_file("guest.xml", &echo_domain_xml_with(name, &image, graphics));
        let guest = Guest {
            rig,
            name: name.to_owned(),
            uri: rig.qemu_uri(),
        };
        guest.virsh_ok(&["define", "--file", xml.to_str().expect("UTF-8 path")]);
        guest
    }

    /// Boots it (`virsh start` by UUID); panics on failure.
    pub fn start(&self) {
        let uuid = self.uuid();
        self.virsh_ok(&["start", "--domain", &uuid]);
    }

    /// The domain's UUID (`virsh domuuid`, by exact name from the listing).
    pub fn uuid(&self) -> String {
        let listing = self.virsh_ok(&["list", "--all", "--uuid", "--name"]);
        listing
            .lines()
            .find_map(|line| {
                let (uuid, name) = line.split_once(' ')?;
                (name == self.name).then(|| uuid.to_owned())
            })
            .unwrap_or_else(|| panic!("no domain {:?} in:\n{listing}", self.name))
    }

    /// The domain's state, as `virsh domstate` words it.
    pub fn state(&self) -> String {
        let uuid = self.uuid();
        self.virsh_ok(&["domstate", "--domain", &uuid])
            .trim()
            .to_owned()
    }

    /// The guest's serial console (COM1), attached by virsh in a pty of its own, once the
    /// guest answers on it: what it prints is then read with [`super::pty::Term::expect`].
    pub fn serial(&self) -> super::pty::Term {
        let uuid = self.uuid();
        let mut term = super::pty::Term::spawn(
            self.rig
                .libvirtd()
                .virsh_command(&self.uri, &["console", "--safe", "--domain", &uuid]),
        );
        term.expect("Escape character is ^]");
        self.attach(&mut term);
        term
    }

    /// Waits until `term`, showing this guest's serial console (through virsh, or dromaius,
    /// or ssh), is attached and every byte typed so far has reached the guest, so that
    /// what it shows next answers what is typed next. Typed too early, a byte is lost
    /// (before virsh makes the terminal raw) or held: QEMU stops reading the console while
    /// the UART is full and the guest's FIFO reset empties it without QEMU noticing, so
    /// bytes typed during boot wait until QEMU's main loop next turns, which may be when a
    /// test sends a key. A line is echoed only after everything typed before it, so its
    /// echo marks the input drained; a monitor command turns the main loop.
    pub fn attach(&self, term: &mut super::pty::Term) {
        term.poke_until("\r", "\n> ");
        let uuid = self.uuid();
        for attempt in 0..20 {
            let marker = format!("sync{attempt}");
            term.line(&marker);
            let echo = format!("ECHO: {marker}\r\n> ");
            if term.try_expect(&echo, std::time::Duration::from_secs(1)) {
                return;
            }
            self.virsh_ok(&["domstats", "--block", &uuid]);
        }
        panic!("{} never echoed a line typed on its console", self.name);
    }

    fn virsh_ok(&self, args: &[&str]) -> String {
        let out = self.rig.virsh_uri(&self.uri, args);
        if !out.status.success() {
            panic!(
                "virsh -c {} {args:?} failed:\n{}",
                self.uri,
                super::describe(&out)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let uuid = self.uuid();
        // Not running is fine; anything else is reported but must not turn into a double panic.
        let _ = self
            .rig
            .virsh_uri(&self.uri, &["destroy", "--domain", &uuid]);
        let _ = self
            .rig
            .virsh_uri(&self.uri, &["undefine", "--domain", &uuid]);
    }
}

/// SIGKILLs QEMU processes started for rigs of test binaries that are no longer running
/// (their floppy images live under `dromaius-rig-<pid>-...`, so the pid is in QEMU's
/// command line).
pub fn sweep_orphans() {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for pid in entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
    {
        let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw);
        if !cmdline.starts_with("/usr/bin/qemu-system") {
            continue;
        }
        let Some(owner) = cmdline.split("dromaius-rig-").nth(1).and_then(|rest| {
            rest.split('-')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok())
        }) else {
            continue;
        };
        if owner != std::process::id() && !Path::new(&format!("/proc/{owner}")).exists() {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
