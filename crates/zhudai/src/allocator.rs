//! Settings of the global allocator (mimalloc) that it reads only from the environment.
//!
//! mimalloc gives memory the process freed back to the operating system after a purge
//! delay: 1 s in mimalloc 3. A bulk import frees a batch of rows after writing it and
//! allocates the next one a second or two later, so the memory went back in between and
//! was faulted in again, 2 MiB zeroed at a time (12 % of an import's CPU samples were the
//! kernel zeroing pages; docs/benchmarks.md, "Session 11" and "Session 12"). With a 10 s
//! delay the process keeps freed memory ten seconds before giving it back.
//!
//! mimalloc takes the option from `MIMALLOC_PURGE_DELAY` when it starts, before `main`,
//! or from `mi_option_set`, which is `unsafe` (forbidden here). So when the variable is
//! not set, `zhudai` executes itself again with it set: same process id, arguments,
//! standard streams and environment otherwise. An operator's own value is left alone
//! (`MIMALLOC_PURGE_DELAY=1000` restores mimalloc's default). ADR 0020, item 11.

use std::ffi::OsString;

/// The variable mimalloc reads its purge delay from, in milliseconds.
pub const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";
/// zhudai's purge delay, in milliseconds.
pub const PURGE_DELAY_MS: &str = "10000";

/// What to run instead of the current process, if anything: `None` when the operator
/// set the variable (or zhudai already did).
pub fn reexec_plan(current: Option<OsString>) -> Option<(&'static str, &'static str)> {
    match current {
        Some(_) => None,
        None => Some((PURGE_DELAY_VAR, PURGE_DELAY_MS)),
    }
}

/// Executes this program again with zhudai's allocator settings when they are not in
/// the environment yet. Returns only when nothing needed doing or the executable could
/// not be found or executed; the process then simply goes on with mimalloc's defaults.
pub fn apply() {
    use std::os::unix::process::CommandExt;
    let Some((var, value)) = reexec_plan(std::env::var_os(PURGE_DELAY_VAR)) else {
        return;
    };
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    // `exec` replaces this process and returns only its error.
    let _not_executed = command.args(args).env(var, value).exec();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_the_delay_only_when_the_operator_did_not() {
        assert_eq!(reexec_plan(None), Some(("MIMALLOC_PURGE_DELAY", "10000")));
        assert_eq!(reexec_plan(Some("1000".into())), None);
        assert_eq!(reexec_plan(Some(OsString::new())), None);
    }
}
