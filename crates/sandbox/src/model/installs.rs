//! App Store installs (`/apps/{id}/install` clicks).

use super::{INSTALLS_CAP, Model, secs};

/// What the sandbox knows of one App Store install (`/apps/{id}`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Install {
    pub(crate) clicks: u64,
    /// Clicks whose link carried Kit's attribution parameter `k_app_id=k_{id}`.
    pub(crate) attributed: u64,
    pub(crate) first_at: i64,
    pub(crate) last_at: i64,
}

impl Model {
    /// One click on the install link; `attributed` when it carried `k_app_id=k_{id}` (Kit's
    /// documented way for an app's own site to get sign-ups attributed to it).
    pub(crate) fn record_install(&mut self, app_id: &str, attributed: bool, now_ms: i64) {
        let now = secs(now_ms);
        let attributed_n = u64::from(attributed);
        if let Some(i) = self.installs.get_mut(app_id) {
            i.clicks += 1;
            i.attributed += attributed_n;
            i.last_at = now;
        } else if self.installs.len() < INSTALLS_CAP {
            self.installs.insert(
                app_id.to_owned(),
                Install {
                    clicks: 1,
                    attributed: attributed_n,
                    first_at: now,
                    last_at: now,
                },
            );
        }
        self.stats.installs_started += 1;
        self.stats.installs_attributed += attributed_n;
    }
}
