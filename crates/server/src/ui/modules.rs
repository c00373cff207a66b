//! The modules of the product as the navigation shows them, grouped as the brief's seven
//! management systems plus the funder network and administration. A module that is not
//! built yet says so plainly and lists what it will do.

/// Where a module stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Pages exist.
    Available,
    /// Planned; the number is the issue that builds it.
    Planned(u32),
}

#[derive(Debug, Clone, Copy)]
pub struct Module {
    /// Stable key: URL segment `/m/<key>` and i18n prefix `module.<key>`.
    pub key: &'static str,
    /// Navigation group (i18n key `nav.group.<group>`).
    pub group: &'static str,
    pub status: Status,
    /// Number of planned capability lines (`module.<key>.plan.1..=n` in the catalogue).
    pub plan_items: u8,
}

pub const MODULES: &[Module] = &[
    Module {
        key: "customers",
        group: "business",
        status: Status::Available,
        plan_items: 4,
    },
    Module {
        key: "applications",
        group: "business",
        status: Status::Available,
        plan_items: 4,
    },
    Module {
        key: "tasks",
        group: "business",
        status: Status::Available,
        plan_items: 3,
    },
    Module {
        key: "loans",
        group: "business",
        status: Status::Available,
        plan_items: 4,
    },
    Module {
        key: "collections",
        group: "business",
        status: Status::Available,
        plan_items: 3,
    },
    Module {
        key: "risk",
        group: "risk",
        // Credit decisions (issue #7); warnings and limits join it.
        // Risk warnings and credit limits (issue #7 items 3 and 4): /risk/dashboard.
        status: Status::Available,
        plan_items: 4,
    },
    Module {
        key: "aml",
        group: "risk",
        status: Status::Planned(0),
        plan_items: 4,
    },
    Module {
        key: "products",
        group: "funding",
        status: Status::Available,
        plan_items: 3,
    },
    Module {
        key: "funders",
        group: "funding",
        status: Status::Available,
        plan_items: 4,
    },
    Module {
        key: "performance",
        group: "management",
        status: Status::Planned(0),
        plan_items: 3,
    },
    Module {
        key: "reports",
        group: "management",
        status: Status::Available,
        plan_items: 2,
    },
    Module {
        key: "security",
        group: "control",
        status: Status::Planned(3),
        plan_items: 4,
    },
    Module {
        key: "audit",
        group: "control",
        status: Status::Available,
        plan_items: 4,
    },
    Module {
        key: "admin",
        group: "system",
        status: Status::Available,
        plan_items: 0,
    },
];

pub const GROUPS: &[&str] = &[
    "business",
    "risk",
    "funding",
    "management",
    "control",
    "system",
];

pub fn find(key: &str) -> Option<&'static Module> {
    MODULES.iter().find(|m| m.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::i18n::{I18n, Lang};

    #[test]
    fn every_module_has_texts_in_both_languages() {
        let i18n = I18n::load();
        for lang in [Lang::ZhCn, Lang::En] {
            let t = i18n.bundle(lang);
            for g in GROUPS {
                assert!(
                    t.contains(&format!("nav.group.{g}")),
                    "{lang:?} nav.group.{g}"
                );
            }
            for m in MODULES {
                assert!(GROUPS.contains(&m.group));
                for suffix in ["title", "summary"] {
                    assert!(
                        t.contains(&format!("module.{}.{suffix}", m.key)),
                        "{lang:?} module.{}.{suffix}",
                        m.key
                    );
                }
                for i in 1..=m.plan_items {
                    assert!(
                        t.contains(&format!("module.{}.plan.{i}", m.key)),
                        "{lang:?} module.{}.plan.{i}",
                        m.key
                    );
                }
            }
        }
    }
}
