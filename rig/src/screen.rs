//! An X server of a test's own (Xvfb on a display it picks itself), for the suites that
//! run real windows (virt-viewer, virt-manager), and screenshots of it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const XVFB: &str = "/usr/bin/Xvfb";
const PYTHON: &str = "/usr/bin/python3";

/// A running Xvfb, killed when dropped.
pub struct Screen {
    server: Child,
    /// `:N`, for `DISPLAY`.
    pub display: String,
}

impl Screen {
    /// Starts one; returns once it accepts connections. Panics, saying what to install,
    /// if it cannot.
    pub fn start() -> Screen {
        // `-displayfd 1`: the server picks a free display and writes its number to stdout
        // once it accepts connections.
        let mut server = Command::new(XVFB)
            .args(["-displayfd", "1", "-nolisten", "tcp"])
            .args(["-screen", "0", "1280x800x24"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{XVFB}: {e} (scripts/install-deps installs xvfb)"));
        let mut line = String::new();
        let stdout = server.stdout.take().expect("Xvfb's stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("Xvfb's display number");
        let number = line.trim();
        assert!(
            !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
            "Xvfb did not say which display: {line:?}"
        );
        Screen {
            display: format!(":{number}"),
            server,
        }
    }

    /// The whole screen as a PNG at `path`, by GDK (which virt-manager and virt-viewer
    /// bring), and its path on stderr, so that the test's log names it.
    pub fn screenshot(&self, path: &Path) {
        const SCRIPT: &str = "import sys, gi\n\
            gi.require_version('Gdk', '3.0')\n\
            from gi.repository import Gdk\n\
            root = Gdk.get_default_root_window()\n\
            shot = Gdk.pixbuf_get_from_window(root, 0, 0, root.get_width(), root.get_height())\n\
            shot.savev(sys.argv[1], 'png', [], [])\n";
        let out = Command::new(PYTHON)
            .args(["-c", SCRIPT])
            .arg(path)
            .env_clear()
            .env("DISPLAY", &self.display)
            .output()
            .unwrap_or_else(|e| panic!("{PYTHON}: {e}"));
        assert!(
            out.status.success(),
            "screenshot of {}: {}",
            self.display,
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
