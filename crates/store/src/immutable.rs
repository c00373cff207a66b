//! Rows that never change once written — product versions (nothing updates or deletes
//! them) and contract template versions (the database refuses to) — kept in memory for
//! the life of the [`crate::Store`] after their first read. The hot paths of an
//! origination read them on nearly every request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// A bounded map of immutable rows: cleared when it would hold more than `MAX` entries
/// (a few products and templates in practice; the bound only stops a runaway).
#[derive(Debug)]
pub struct Memo<K, V>(Mutex<HashMap<K, Arc<V>>>);

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, V> Memo<K, V> {
    const MAX: usize = 4096;

    pub(crate) fn get(&self, key: &K) -> Option<Arc<V>> {
        self.0.lock().ok().and_then(|m| m.get(key).cloned())
    }

    pub(crate) fn put(&self, key: K, v: Arc<V>) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= Self::MAX {
                m.clear();
            }
            m.insert(key, v);
        }
    }
}

/// The store's memo of immutable rows.
#[derive(Debug, Default)]
pub struct Immutable {
    /// Product versions by product code and version number.
    pub(crate) product_versions: Memo<(String, i64), crate::products::ProductVersion>,
    /// Contract template versions by id.
    pub(crate) templates: Memo<i64, crate::contracts::TemplateRow>,
}
