//! `sessionctl audit verify [--json]`: runs [`crate::audit::verify`] over the whole
//! store with a progress bar, prints its findings and a summary, and exits 1 when there
//! are any.

use indicatif::{ProgressBar, ProgressStyle};

use super::{out, pretty_json, CtlError};
use crate::store::EventStore;

/// Verifies the store; `Err(CtlError::Findings)` when the report is not clean.
pub(super) async fn verify(store: &EventStore, json: bool) -> Result<(), CtlError> {
    let total = store.count_events().await?;
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
    if let Ok(style) =
        ProgressStyle::with_template("verify [{bar:40}] {pos}/{len} events  {per_sec}  ETA {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let report = crate::audit::verify(store, |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    if json {
        out(&pretty_json(&report)?);
    } else {
        for f in &report.findings {
            out(&format!("{:<10} {:<48} {}", f.check, f.subject, f.detail));
        }
        out(&format!(
            "{} events in {} streams; read models compared: {}; snapshots compared: {}; {} problem(s)",
            report.events,
            report.streams,
            report.read_models.join(", "),
            report.snapshots,
            report.findings.len()
        ));
    }
    if report.findings.is_empty() {
        Ok(())
    } else {
        Err(CtlError::Findings(report.findings.len()))
    }
}
