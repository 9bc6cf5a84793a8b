//! `log` records and panics to Android's log (logcat, tag "edgesight") through liblog.

use std::ffi::{c_char, c_int, CString};

#[link(name = "log")]
extern "C" {
    fn __android_log_write(prio: c_int, tag: *const c_char, text: *const c_char) -> c_int;
}

const TAG: &std::ffi::CStr = c"edgesight";

fn write(prio: c_int, text: &str) {
    // Interior NULs would cut the message; replace them rather than drop it.
    let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
    // SAFETY: both pointers are NUL-terminated strings alive for the call.
    unsafe { __android_log_write(prio, TAG.as_ptr(), text.as_ptr()) };
}

struct Logcat;

impl log::Log for Logcat {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            // android_LogPriority: DEBUG 3, INFO 4, WARN 5, ERROR 6.
            let prio = match r.level() {
                log::Level::Error => 6,
                log::Level::Warn => 5,
                log::Level::Info => 4,
                _ => 3,
            };
            write(prio, &format!("{}: {}", r.target(), r.args()));
        }
    }

    fn flush(&self) {}
}

pub fn init() {
    static LOGGER: Logcat = Logcat;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        write(6, &format!("panic: {info}"));
        default(info);
    }));
}
