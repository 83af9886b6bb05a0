//! [`PriceTable`]: model id → [`ModelPrice`], built in and overridable.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::{cost_breakdown, CostBreakdown, ModelPrice, Rate};
use crate::usage::Usage;

/// `pricing-reference.json`, embedded at build time.
const BUILTIN_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/pricing-reference.json"
));

/// The built-in table, parsed on first use.
static BUILTIN: OnceLock<Result<PriceTable, PriceTableError>> = OnceLock::new();

/// Prices by model id: a base table (the built-in file, or one given to
/// [`PriceTable::from_json_str`]) and overrides from configuration on top.
///
/// ```
/// use llm_gateway::pricing::{ModelPrice, PriceTable, Rate};
///
/// let table = PriceTable::builtin();
/// assert!(table.lookup(None, "claude-sonnet-4-5-20250929").is_some());
/// assert!(table.lookup(Some("deepseek"), "deepseek-flash").is_some());
/// assert!(table.lookup(None, "no-such-model").is_none()); // unpriced: record cost null
///
/// let mine = ModelPrice::flat(Rate::from_micros_per_mtok(1), Rate::from_micros_per_mtok(2));
/// let table = table.with_override("claude-sonnet-4-5", mine);
/// assert_eq!(table.lookup(None, "claude-sonnet-4-5-20250929"), Some(&mine));
/// ```
///
/// See the [module docs](super) for the lookup order.
#[derive(Clone, Debug)]
pub struct PriceTable {
    /// `source@commit+as_of` of the base table.
    base_version: String,
    /// `base_version`, plus a digest of the overrides when there are any.
    version: String,
    base: Arc<HashMap<String, ModelPrice>>,
    /// Sorted, so the version digest does not depend on insertion order.
    overrides: BTreeMap<String, ModelPrice>,
}

/// Which part of a [`PriceTable`] priced a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceSource {
    /// An override from configuration.
    Override,
    /// The base table (built in or loaded).
    Table,
}

/// A successful lookup: the key that matched and its price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceMatch<'a> {
    /// The table key that matched, e.g. `claude-sonnet-4-5` for `claude-sonnet-4-5-20250929`.
    pub key: &'a str,
    /// The price under that key.
    pub price: &'a ModelPrice,
    /// Whether an override or the base table matched.
    pub source: PriceSource,
}

/// Why a price table could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceTableError {
    key: Option<String>,
    message: String,
}

// === impl PriceTable ===

impl PriceTable {
    /// The built-in table from `data/pricing-reference.json`, parsed once per process.
    ///
    /// The embedded file is checked by this module's tests, so it parses; if it ever did not,
    /// this returns an empty table (every model unpriced, version `unavailable`) rather than
    /// panic. Call [`PriceTable::try_builtin`] at startup to refuse to run instead.
    pub fn builtin() -> PriceTable {
        PriceTable::try_builtin().unwrap_or_else(|_| PriceTable::empty("unavailable"))
    }

    /// The built-in table, or why the embedded file did not parse.
    pub fn try_builtin() -> Result<PriceTable, PriceTableError> {
        BUILTIN
            .get_or_init(|| PriceTable::from_json_str(BUILTIN_JSON))
            .clone()
    }

    /// Reads a table in the `pricing-reference.json` format: an object with `source` and
    /// `as_of` strings, and every other key a model id whose value is a [`ModelPrice`].
    pub fn from_json_str(json: &str) -> Result<PriceTable, PriceTableError> {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| PriceTableError::table(e.to_string()))?;
        let source = take_string(&mut object, "source")?;
        let as_of = take_string(&mut object, "as_of")?;
        let mut base = HashMap::with_capacity(object.len());
        for (key, value) in object {
            match ModelPrice::deserialize(value) {
                Ok(price) => {
                    base.insert(key, price);
                }
                Err(e) => return Err(PriceTableError::entry(key, e.to_string())),
            }
        }
        let version = version_label(&source, &as_of);
        Ok(PriceTable {
            base_version: version.clone(),
            version,
            base: Arc::new(base),
            overrides: BTreeMap::new(),
        })
    }

    /// A table that prices nothing.
    fn empty(version: &str) -> PriceTable {
        PriceTable {
            base_version: version.to_owned(),
            version: version.to_owned(),
            base: Arc::new(HashMap::new()),
            overrides: BTreeMap::new(),
        }
    }

    /// The table version recorded with every priced request.
    ///
    /// `{name}@{commit}+{as_of}` of the base table, from the file's `source` (its first
    /// `owner/name`, and the first 8 hex digits after `commit `) and `as_of`: for the built-in
    /// file `litellm@00035b69+2026-11-25`. With overrides, `+overrides.{digest}` follows,
    /// a 64-bit FNV-1a digest of the sorted overrides, so equal configs give equal versions.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// This table with `price` overriding every base entry for `model`; see [`PriceTable::insert`].
    pub fn with_override(mut self, model: &str, price: ModelPrice) -> PriceTable {
        self.insert(model, price);
        self
    }

    /// Adds or replaces the override for `model` (an exact id, `provider/id`, or `provider/*`),
    /// returning the override it replaced.
    pub fn insert(&mut self, model: &str, price: ModelPrice) -> Option<ModelPrice> {
        let previous = self.overrides.insert(model.to_owned(), price);
        self.version = format!(
            "{}+overrides.{:016x}",
            self.base_version,
            digest(&self.overrides)
        );
        previous
    }

    /// The price under exactly `key`, an override first; no fallback steps.
    pub fn get(&self, key: &str) -> Option<&ModelPrice> {
        self.overrides.get(key).or_else(|| self.base.get(key))
    }

    /// The number of distinct keys, overrides and base together.
    pub fn len(&self) -> usize {
        let new_keys = self
            .overrides
            .keys()
            .filter(|k| !self.base.contains_key(k.as_str()))
            .count();
        self.base.len() + new_keys
    }

    /// Whether the table has no keys at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The price of `model` served by the provider `provider_hint` (a litellm provider prefix
    /// such as `deepseek`, `azure` or `ollama`), or `None` if it has none: then the cost is
    /// unknown and must be recorded as `null`, never as zero.
    pub fn lookup(&self, provider_hint: Option<&str>, model: &str) -> Option<&ModelPrice> {
        self.lookup_match(provider_hint, model).map(|m| m.price)
    }

    /// Like [`PriceTable::lookup`], also telling which key and which part of the table matched.
    pub fn lookup_match(&self, provider_hint: Option<&str>, model: &str) -> Option<PriceMatch<'_>> {
        let keys = candidate_keys(provider_hint, model);
        let find = |source: PriceSource| {
            keys.iter().find_map(|key| {
                let hit = match source {
                    PriceSource::Override => self.overrides.get_key_value(key.as_str()),
                    PriceSource::Table => self.base.get_key_value(key.as_str()),
                };
                hit.map(|(key, price)| PriceMatch {
                    key: key.as_str(),
                    price,
                    source,
                })
            })
        };
        find(PriceSource::Override).or_else(|| find(PriceSource::Table))
    }

    /// The cost of `usage` for `model` at `provider_hint`, or `None` when the model is unpriced.
    pub fn cost_of(
        &self,
        provider_hint: Option<&str>,
        model: &str,
        usage: &Usage,
    ) -> Option<CostBreakdown> {
        self.lookup(provider_hint, model)
            .map(|price| cost_breakdown(price, usage))
    }
}

/// The keys to try for a model, in order; see the module docs.
fn candidate_keys(hint: Option<&str>, model: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(6);
    let mut push = |key: String| {
        if !keys.contains(&key) {
            keys.push(key);
        }
    };
    let prefixed = |id: &str| hint.map(|h| format!("{h}/{id}"));
    push(model.to_owned());
    if let Some(key) = prefixed(model) {
        push(key);
    }
    if let Some(family) = strip_date_suffix(model) {
        push(family.to_owned());
        if let Some(key) = prefixed(family) {
            push(key);
        }
    }
    if let Some(h) = hint {
        push(format!("{h}/*"));
    }
    if let Some((provider, _)) = model.split_once('/') {
        push(format!("{provider}/*"));
    }
    keys
}

/// `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`: drops a trailing `-YYYYMMDD`.
///
/// OpenAI's `-YYYY-MM-DD` snapshots are left alone: they were priced apart
/// (`azure/gpt-4o-2024-11-20` is 2.75/11, `azure/gpt-4o` 2.5/10).
fn strip_date_suffix(model: &str) -> Option<&str> {
    let (family, suffix) = model.rsplit_once('-')?;
    let is_date = suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_digit());
    (is_date && !family.is_empty()).then_some(family)
}

/// Removes a required string field from the top-level object.
fn take_string(
    object: &mut serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<String, PriceTableError> {
    match object.remove(field) {
        Some(serde_json::Value::String(text)) => Ok(text),
        _ => Err(PriceTableError::table(format!(
            "missing string field `{field}`"
        ))),
    }
}

/// `{name}@{commit8}+{as_of}` from the file's `source` text.
fn version_label(source: &str, as_of: &str) -> String {
    let repo = source
        .split(|c: char| c.is_whitespace() || c == ',')
        .find(|word| word.contains('/'))
        .unwrap_or("unknown");
    let name = repo.rsplit('/').next().unwrap_or(repo);
    let commit: String = source
        .split_once("commit ")
        .map(|(_, rest)| {
            rest.chars()
                .take_while(char::is_ascii_hexdigit)
                .take(8)
                .collect()
        })
        .unwrap_or_default();
    let commit = if commit.is_empty() {
        "unknown"
    } else {
        &commit
    };
    format!("{name}@{commit}+{as_of}")
}

/// A stable 64-bit FNV-1a digest of the overrides' keys and exact rates.
fn digest(overrides: &BTreeMap<String, ModelPrice>) -> u64 {
    let mut text = String::new();
    for (key, price) in overrides {
        text.push_str(key);
        text.push('=');
        push_rates(&mut text, &price.base());
        if let Some(tier) = &price.tier {
            text.push_str(&format!(">{}:", tier.threshold_tokens));
            push_rates(&mut text, &tier.prices);
        }
        text.push(';');
    }
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn push_rates(text: &mut String, card: &super::RateCard) {
    let show = |rate: Option<Rate>| rate.map_or_else(|| "-".to_owned(), |r| r.to_string());
    text.push_str(&format!(
        "{},{},{},{},{}",
        card.input,
        card.output,
        show(card.cache_write_5m),
        show(card.cache_write_1h),
        show(card.cache_read)
    ));
}

// === impl PriceTableError ===

impl PriceTableError {
    fn table(message: String) -> PriceTableError {
        PriceTableError { key: None, message }
    }

    fn entry(key: String, message: String) -> PriceTableError {
        PriceTableError {
            key: Some(key),
            message,
        }
    }

    /// The model id whose entry was refused, if the fault was in one entry.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl fmt::Display for PriceTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "price table entry {key:?}: {}", self.message),
            None => write!(f, "price table: {}", self.message),
        }
    }
}

impl std::error::Error for PriceTableError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(micros: u64) -> Rate {
        Rate::from_micros_per_mtok(micros)
    }

    fn reference() -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(BUILTIN_JSON).expect("reference file is a JSON object")
    }

    #[test]
    fn embedded_file_parses_with_every_model() {
        let table = PriceTable::try_builtin().expect("embedded pricing-reference.json parses");
        let json = reference();
        let models: Vec<&String> = json
            .keys()
            .filter(|k| *k != "source" && *k != "as_of")
            .collect();
        assert_eq!(models.len(), json.len() - 2);
        assert_eq!(table.len(), models.len());
        for key in models {
            assert!(table.get(key).is_some(), "{key} missing");
        }
    }

    #[test]
    fn every_rate_equals_the_file_number() {
        // Cross-check the exact parse against the JSON's own f64 for every field and tier.
        let table = PriceTable::builtin();
        let to_f64 = |r: Rate| r.micros_per_mtok() as f64 / 1e6;
        let check = |key: &str, fields: &serde_json::Value, card: &super::super::RateCard| {
            let want = |name: &str| fields.get(name).and_then(serde_json::Value::as_f64);
            assert_eq!(Some(to_f64(card.input)), want("input"), "{key} input");
            assert_eq!(Some(to_f64(card.output)), want("output"), "{key} output");
            assert_eq!(
                card.cache_write_5m.map(to_f64),
                want("cache_write_5m"),
                "{key}"
            );
            assert_eq!(
                card.cache_write_1h.map(to_f64),
                want("cache_write_1h"),
                "{key}"
            );
            assert_eq!(card.cache_read.map(to_f64), want("cache_read"), "{key}");
        };
        let mut tiers = 0;
        for (key, fields) in reference() {
            if key == "source" || key == "as_of" {
                continue;
            }
            let price = table.get(&key).expect("present");
            check(&key, &fields, &price.base());
            let written = fields
                .get("above_200k_tokens")
                .map(|t| (200_000, t))
                .or_else(|| fields.get("above_100k_tokens").map(|t| (100_000, t)));
            match (written, &price.tier) {
                (Some((threshold, t)), Some(tier)) => {
                    tiers += 1;
                    assert_eq!(tier.threshold_tokens, threshold, "{key}");
                    check(&key, t, &tier.prices);
                }
                (None, None) => {}
                _ => panic!("{key}: tier mismatch"),
            }
        }
        assert_eq!(tiers, 4); // sonnet-4, sonnet-4-5 (+ dated), haiku-5-5
    }

    #[test]
    fn version_comes_from_source_and_as_of() {
        assert_eq!(
            PriceTable::builtin().version(),
            "litellm@00035b69+2026-11-25"
        );
        assert_eq!(
            version_label("no repo here", "2020-01-01"),
            "unknown@unknown+2020-01-01"
        );
    }

    #[test]
    fn overrides_change_the_version_deterministically() {
        let price = ModelPrice::flat(rate(1), rate(2));
        let other = ModelPrice::flat(rate(1), rate(3));
        let a = PriceTable::builtin()
            .with_override("x", price)
            .with_override("y", other);
        let b = PriceTable::builtin()
            .with_override("y", other)
            .with_override("x", price);
        let c = PriceTable::builtin()
            .with_override("x", price)
            .with_override("y", price);
        assert!(a
            .version()
            .starts_with("litellm@00035b69+2026-11-25+overrides."));
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
    }

    #[test]
    fn dated_suffix_falls_back_to_family() {
        let table = PriceTable::builtin();
        // An exact dated entry wins over the family.
        let exact = table
            .lookup_match(None, "claude-sonnet-4-5-20250929")
            .expect("priced");
        assert_eq!(exact.key, "claude-sonnet-4-5-20250929");
        // A date the table does not list is priced as its family.
        let family = table
            .lookup_match(None, "claude-haiku-5-5-20270101")
            .expect("priced");
        assert_eq!(family.key, "claude-haiku-5-5");
        assert_eq!(family.price.input, rate(100_000));
        // With a provider prefix too.
        let prefixed = table
            .lookup_match(Some("deepseek"), "deepseek-flash-20270101")
            .expect("priced");
        assert_eq!(prefixed.key, "deepseek/deepseek-flash");
        // Not a date: no fallback.
        assert!(table.lookup(None, "claude-sonnet-4-5-2025092").is_none());
        assert!(table.lookup(None, "claude-sonnet-4-5-latest").is_none());
        // OpenAI-style dates are not stripped.
        assert!(table.lookup(Some("azure"), "gpt-4o-2099-01-01").is_none());
    }

    #[test]
    fn provider_prefixed_lookup() {
        let table = PriceTable::builtin();
        let flash = table
            .lookup_match(Some("deepseek"), "deepseek-flash")
            .expect("priced");
        assert_eq!(flash.key, "deepseek/deepseek-flash");
        assert_eq!(flash.price.cache_read, Some(rate(6_000)));
        assert_eq!(flash.price.output, rate(1_200_000));
        let gpt = table.lookup(Some("azure"), "gpt-4o").expect("priced");
        assert_eq!(gpt.input, rate(2_500_000));
        let mini = table.lookup(Some("azure"), "gpt-4o-mini").expect("priced");
        assert_eq!(mini.input, rate(165_000));
        // Already prefixed ids match exactly, with or without a hint.
        assert!(table.lookup(None, "azure/gpt-4.1").is_some());
        // Without the hint the bare id is not a key.
        assert!(table.lookup(None, "gpt-4o").is_none());
    }

    #[test]
    fn ollama_wildcard_is_priced_at_zero_on_purpose() {
        let table = PriceTable::builtin();
        let hit = table
            .lookup_match(Some("ollama"), "llama3.2:3b")
            .expect("ollama/* prices every local model");
        assert_eq!(hit.key, "ollama/*");
        let usage = Usage {
            input_tokens: Some(10_000),
            output_tokens: Some(1_000),
            ..Usage::default()
        };
        let cost = table
            .cost_of(Some("ollama"), "llama3.2:3b", &usage)
            .expect("Some: priced, at zero");
        assert!(cost.total.is_zero());
        // The prefix in the model id works without a hint.
        assert!(table.lookup(None, "ollama/qwen3").is_some());
        // The wildcard is per provider.
        assert!(table.lookup(Some("azure"), "llama3.2:3b").is_none());
    }

    #[test]
    fn unknown_model_is_unpriced_not_free() {
        let table = PriceTable::builtin();
        assert!(table.lookup(None, "gpt-9").is_none());
        assert!(table
            .lookup(Some("anthropic"), "claude-unknown-1")
            .is_none());
        let usage = Usage {
            input_tokens: Some(1),
            ..Usage::default()
        };
        assert_eq!(table.cost_of(Some("deepseek"), "deepseek-v9", &usage), None);
        // The empty fallback table prices nothing either.
        let empty = PriceTable::empty("unavailable");
        assert!(empty.is_empty());
        assert!(empty.lookup(Some("ollama"), "x").is_none());
    }

    #[test]
    fn overrides_win_over_builtins() {
        let mine = ModelPrice::flat(rate(1_000_000), rate(2_000_000));
        let mut table = PriceTable::builtin();
        assert_eq!(table.insert("claude-sonnet-4-5-20250929", mine), None);
        let hit = table
            .lookup_match(None, "claude-sonnet-4-5-20250929")
            .expect("priced");
        assert_eq!(hit.source, PriceSource::Override);
        assert_eq!(hit.price, &mine);
        assert_eq!(table.len(), PriceTable::builtin().len());

        // A family override beats the built-in exact dated entry.
        let family = ModelPrice::flat(rate(7), rate(8));
        let table = PriceTable::builtin().with_override("claude-opus-4-1", family);
        assert_eq!(
            table.lookup(None, "claude-opus-4-1-20250805"),
            Some(&family)
        );
        // Other models are untouched.
        let opus4 = table
            .lookup_match(None, "claude-opus-4-20250514")
            .expect("priced");
        assert_eq!(opus4.source, PriceSource::Table);

        // A new key extends the table.
        let table = table.with_override("my/model", family);
        assert_eq!(table.len(), PriceTable::builtin().len() + 1);
        assert_eq!(table.lookup(None, "my/model"), Some(&family));
    }

    #[test]
    fn bad_tables_name_the_fault() {
        let err = PriceTable::from_json_str(r#"{"as_of": "x"}"#).expect_err("no source");
        assert_eq!(err.key(), None);
        let err = PriceTable::from_json_str(
            r#"{"source": "a/b, commit 1234", "as_of": "x", "m": {"input": 1e-9, "output": 1}}"#,
        )
        .expect_err("too precise");
        assert_eq!(err.key(), Some("m"));
        assert!(err.to_string().contains("0.000001"), "{err}");
        assert!(PriceTable::from_json_str("[1, 2]").is_err());
        assert!(PriceTable::from_json_str("").is_err());
        let ok = PriceTable::from_json_str(
            r#"{"source": "a/b, commit 1234abcdef", "as_of": "x", "m": {"input": 1, "output": 2}}"#,
        )
        .expect("valid");
        assert_eq!(ok.version(), "b@1234abcd+x");
        assert_eq!(ok.len(), 1);
    }
}
