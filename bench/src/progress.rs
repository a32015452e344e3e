//! Progress bars on stderr (stdout carries only the Markdown tables).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `what`, with rate and ETA.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len}  {per_sec}  ETA {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}
