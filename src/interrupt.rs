//! A request to stop a headless run early: Ctrl-C (SIGINT), SIGTERM (service managers, `kill`),
//! SIGHUP (a closed terminal). The first signal only sets a flag that the run polls between
//! frames, so it ends with whole outputs and a report saying why; a second one ends the process
//! at once (the handler is reset after one use).
//!
//! The handler is installed by the command line (`Stop::on_signals`) and the value passed down
//! with the job; the library never installs it by itself.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// The signal received (0: none). The handler may only touch atomics.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

#[derive(Clone, Default)]
pub struct Stop {
    source: Source,
}

#[derive(Clone, Default)]
enum Source {
    /// Runs to the end (tests, benchmarks, the library's default).
    #[default]
    Never,
    /// The process's signals, after `on_signals`.
    Signals,
    /// Set by another part of the program (tests).
    Manual(Arc<AtomicI32>),
}

impl Stop {
    pub fn never() -> Stop {
        Stop::default()
    }

    /// Installs the handlers for SIGINT, SIGTERM and SIGHUP and returns the flag they set.
    pub fn on_signals() -> Stop {
        #[cfg(unix)]
        install();
        Stop { source: Source::Signals }
    }

    /// A flag set by `request` (for tests of what a stop leaves behind).
    pub fn manual() -> Stop {
        Stop { source: Source::Manual(Arc::new(AtomicI32::new(0))) }
    }

    /// Sets a manual flag as if `signal` had arrived.
    pub fn request(&self, signal: i32) {
        if let Source::Manual(f) = &self.source {
            f.store(signal, Ordering::SeqCst);
        }
    }

    /// The signal that asked to stop, if one did.
    pub fn requested(&self) -> Option<i32> {
        let s = match &self.source {
            Source::Never => 0,
            Source::Signals => SIGNAL.load(Ordering::SeqCst),
            Source::Manual(f) => f.load(Ordering::SeqCst),
        };
        (s != 0).then_some(s)
    }
}

/// "SIGINT (Ctrl-C)", "SIGTERM", ... for messages.
pub fn signal_name(sig: i32) -> String {
    match sig {
        2 => "SIGINT (Ctrl-C)".into(),
        15 => "SIGTERM".into(),
        1 => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

/// The exit status of a process that stopped for `sig`, by the shell's convention.
pub fn exit_status(sig: i32) -> i32 {
    128 + sig
}

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

#[cfg(unix)]
fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic, which is
        // async-signal-safe; SA_RESETHAND makes a second signal take the default action.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_stop_reports_its_signal() {
        let s = Stop::manual();
        let copy = s.clone();
        assert_eq!(copy.requested(), None);
        s.request(2);
        assert_eq!(copy.requested(), Some(2));
        assert_eq!(signal_name(2), "SIGINT (Ctrl-C)");
        assert_eq!(exit_status(15), 143);
        assert_eq!(Stop::never().requested(), None);
    }
}
