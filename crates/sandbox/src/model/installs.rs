//! App Store installs (`/apps/{id}/install` clicks).

use super::{INSTALLS_CAP, Model, secs};

/// What the sandbox knows of one App Store install (`/apps/{id}`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Install {
    pub(crate) clicks: u64,
    pub(crate) first_at: i64,
    pub(crate) last_at: i64,
}

impl Model {
    pub(crate) fn record_install(&mut self, app_id: &str, now_ms: i64) {
        let now = secs(now_ms);
        if let Some(i) = self.installs.get_mut(app_id) {
            i.clicks += 1;
            i.last_at = now;
        } else if self.installs.len() < INSTALLS_CAP {
            self.installs.insert(
                app_id.to_owned(),
                Install {
                    clicks: 1,
                    first_at: now,
                    last_at: now,
                },
            );
        }
        self.stats.installs_started += 1;
    }
}
