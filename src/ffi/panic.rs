//! The panic guard: a panic must never unwind into IRIS (Rust would abort the whole database
//! process). It becomes an `internal` error result instead, and the process's runtime and
//! session are abandoned (see `runtime`): the next call starts from fresh ones.

use crate::error::Error;
use crate::report::{Op, Report};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; a panic becomes `ok: false, kind: "internal"`.
pub fn guard(op: Op, f: impl FnOnce() -> Report) -> Report {
    // The closure's captures are plain inputs; nothing broken is observed after a panic.
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        crate::runtime::abandon();
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let mut report = Report::new(op);
        report.fail(&Error::internal(format!(
            "irisvip {} panicked: {what}; please report this",
            op.as_str()
        )));
        report
    })
}
