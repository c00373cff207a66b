//! Installs the roles of the brief on a new database (and any seed role added by a newer
//! version). Existing roles are never changed: an administrator's edits win.

use zhudai_domain::access::SEED_ROLES;
use zhudai_store::identity::{DataScope, NewRole};
use zhudai_store::{Store, StoreError};

/// Creates missing seed roles; returns how many were created.
pub async fn ensure_roles(store: &Store, now_ms: i64) -> Result<usize, StoreError> {
    let existing = store.roles().await?;
    let mut created = 0;
    for seed in SEED_ROLES {
        if existing.iter().any(|r| r.code == seed.code) {
            continue;
        }
        let role = NewRole {
            code: seed.code,
            name_zh: seed.zh,
            name_en: seed.en,
            data_scope: DataScope::parse(seed.scope)?,
            is_system: true,
            requires_2fa: seed.requires_2fa,
        };
        let id = match store.role_create(&role, now_ms).await {
            Ok(id) => id,
            // Another instance created it at the same moment.
            Err(e) if e.is_unique_violation("roles_code_key", "roles.code") => continue,
            Err(e) => return Err(e),
        };
        store
            .role_set_permissions(id, seed.permissions, now_ms)
            .await?;
        store
            .role_set_field_access(id, seed.clear_fields, now_ms)
            .await?;
        created += 1;
    }
    Ok(created)
}
