//! Progress bars for long work, on stderr.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `total` `unit`s (such as `decisions`). It draws on stderr, and
/// not at all when stderr is not a terminal.
pub fn bar(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
