//! Interface languages: Simplified Chinese by default, English on request.
//!
//! Messages live in `i18n/<lang>.toml` (flat `key = "text"` tables) so a translator edits
//! text files, not Rust. Both catalogues are embedded at build time; a test proves they
//! hold the same keys and that every key the code asks for exists.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::collections::HashMap;
use std::convert::Infallible;

pub const COOKIE: &str = "zhudai_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    ZhCn,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" | "zh_cn" | "zh-hans" => Some(Lang::ZhCn),
            "en" | "en-us" | "en-gb" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::ZhCn => Lang::En,
            Lang::En => Lang::ZhCn,
        }
    }
}

/// The language of a request: `?lang=` first, then the cookie, then Chinese.
impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(q) = parts.uri.query() {
            for pair in q.split('&') {
                if let Some(v) = pair.strip_prefix("lang=") {
                    if let Some(l) = Lang::parse(v) {
                        return Ok(l);
                    }
                }
            }
        }
        Ok(cookie(parts, COOKIE)
            .and_then(|v| Lang::parse(&v))
            .unwrap_or_default())
    }
}

/// Reads one cookie from the request headers.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    crate::http::cookie_value(&parts.headers, name)
}

/// Both catalogues.
#[derive(Debug, Clone)]
pub struct I18n {
    zh: Bundle,
    en: Bundle,
}

/// The messages of one language.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    messages: HashMap<String, String>,
}

impl Bundle {
    fn parse(source: &str) -> Self {
        let table: toml::Table = toml::from_str(source).unwrap_or_default();
        let messages = table
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect();
        Bundle { messages }
    }

    /// The message for `key`, or the key itself so a missing text is visible, not blank.
    pub fn get(&self, key: &str) -> String {
        self.messages
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_owned())
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.messages.keys()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.messages.contains_key(key)
    }
}

pub const ZH_SOURCE: &str = include_str!("../../i18n/zh-CN.toml");
pub const EN_SOURCE: &str = include_str!("../../i18n/en.toml");

impl I18n {
    pub fn load() -> Self {
        I18n {
            zh: Bundle::parse(ZH_SOURCE),
            en: Bundle::parse(EN_SOURCE),
        }
    }

    pub fn bundle(&self, lang: Lang) -> &Bundle {
        match lang {
            Lang::ZhCn => &self.zh,
            Lang::En => &self.en,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn catalogues_parse_and_match() {
        let zh: toml::Table = toml::from_str(ZH_SOURCE).expect("zh-CN.toml parses");
        let en: toml::Table = toml::from_str(EN_SOURCE).expect("en.toml parses");
        let zk: BTreeSet<_> = zh.keys().collect();
        let ek: BTreeSet<_> = en.keys().collect();
        assert_eq!(
            zk.difference(&ek).collect::<Vec<_>>(),
            Vec::<&&String>::new(),
            "keys only in zh-CN"
        );
        assert_eq!(
            ek.difference(&zk).collect::<Vec<_>>(),
            Vec::<&&String>::new(),
            "keys only in en"
        );
        assert!(zh
            .values()
            .all(|v| v.as_str().is_some_and(|s| !s.is_empty())));
    }

    /// Every literal key passed to `.get("…")` in the UI code exists in the catalogue.
    #[test]
    fn every_key_used_in_code_exists() {
        let i18n = I18n::load();
        let mut missing = Vec::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (i, _) in text.match_indices("t.get(\"") {
                        let rest = &text[i + 7..];
                        let key = &rest[..rest.find('"').unwrap()];
                        if !i18n.bundle(Lang::ZhCn).contains(key) {
                            missing.push(format!("{}: {key}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys missing from i18n catalogues: {missing:#?}"
        );
    }

    #[test]
    fn language_parsing() {
        assert_eq!(Lang::parse("EN"), Some(Lang::En));
        assert_eq!(Lang::parse("zh-CN"), Some(Lang::ZhCn));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::default(), Lang::ZhCn);
    }
}
