//! Runs a command under a time limit and an address-space limit and reports
//! its peak memory: for input that once made oxport hang or grow without
//! bound. A run past the time limit is killed, so such a test fails instead
//! of hanging, and the address-space limit keeps a runaway from taking the
//! machine's memory.

use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Bounded {
    /// `None` when the process was killed at the time limit.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident memory, in KiB.
    pub max_rss_kib: i64,
    pub elapsed: Duration,
}

impl Bounded {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn describe(&self) -> String {
        let status = match self.status {
            None => format!("killed after {:?} (hung)", self.elapsed),
            Some(s) => format!("{s}"),
        };
        format!(
            "{status}, peak RSS {} MiB, in {:.1?}; stderr: {}",
            self.max_rss_kib / 1024,
            self.elapsed,
            super::tail(&self.stderr, 600)
        )
    }
}

/// Runs `cmd` with at most `address_space` bytes of virtual memory, killing
/// it after `timeout`; stdout and stderr go through files in `scratch`.
pub fn run_bounded(
    cmd: &mut Command,
    scratch: &Path,
    timeout: Duration,
    address_space: u64,
) -> Bounded {
    let out_path = scratch.join(".bounded-stdout");
    let err_path = scratch.join(".bounded-stderr");
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .env_remove("RUST_LOG");
    let limit = libc::rlimit {
        rlim_cur: address_space,
        rlim_max: address_space,
    };
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    // Reaped below by wait4, which also gives the peak memory.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut raw = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: waits for our own child, filling the two out-parameters.
        let r = unsafe { libc::wait4(pid, &mut raw, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if start.elapsed() > timeout {
            killed = true;
            // SAFETY: the child has not been reaped, so the pid is still ours.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::wait4(pid, &mut raw, 0, &mut usage);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Bounded {
        status: (!killed).then(|| ExitStatus::from_raw(raw)),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        max_rss_kib: usage.ru_maxrss,
        elapsed: start.elapsed(),
    }
}
