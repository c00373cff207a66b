//! `zhudai keys …`: operator commands on the master keys of `DATA_DIR/keys`.
//!
//! `zhudai keys rotate` makes a new master key active and rewraps every data key under
//! it, with a progress bar on stderr (hidden when stderr is not a terminal). It is safe
//! while servers run: they reload the key directory when they meet the new key id.
//! The work is done by [`zhudai_server::vault::rotate_master`].

use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;
use std::path::Path;
use zhudai_server::vault::rotate_master;
use zhudai_store::Store;

/// Rotates the master key; returns the one-line summary for stdout, or a clear error.
/// Refused when the master key comes from `ZHUDAI_MASTER_KEY` (`env_master_key`).
pub async fn rotate(
    store: &Store,
    data_dir: &Path,
    env_master_key: Option<&SecretString>,
) -> Result<String, String> {
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "rewrapping data keys {bar:40} {pos}/{len} ({per_sec}, {eta} left)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    let result = rotate_master(store, data_dir, env_master_key, None, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    result
        .map(|report| report.summary())
        .map_err(|e| e.to_string())
}
