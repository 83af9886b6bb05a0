//! Limit values checked once, the same way for the config file and the API: each error
//! names the field it is about.

use crate::budget::{Budget, Limits, Period};
use crate::pricing::Money;

/// A bad value, naming its field (`rpm`, `budget_period`, `models[1]`, …) relative to
/// the key or team it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field, e.g. `rpm`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The raw limit fields of a key or team, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitFields {
    /// The budget per window, exact.
    pub budget_usd: Option<Money>,
    /// The budget's window (default `day` when a budget is set).
    pub budget_period: Option<Period>,
    /// Requests per minute (must be positive; a negative value is given as 0).
    pub rpm: Option<u64>,
    /// Tokens per minute (must be positive).
    pub tpm: Option<u64>,
    /// Requests open at once (must be positive).
    pub max_concurrent: Option<u64>,
}

impl LimitFields {
    /// The fields of `limits`.
    pub fn of(limits: &Limits) -> Self {
        Self {
            budget_usd: limits.budget.map(|b| b.limit),
            budget_period: limits.budget.map(|b| b.period),
            rpm: limits.rpm.map(u64::from),
            tpm: limits.tpm,
            max_concurrent: limits.max_concurrent.map(u64::from),
        }
    }

    /// Check the fields and make [`Limits`] of them.
    pub fn limits(&self) -> Result<Limits, FieldError> {
        let budget = match (self.budget_usd, self.budget_period) {
            (Some(limit), period) => Some(Budget {
                limit,
                period: period.unwrap_or(Period::Day),
            }),
            (None, Some(_)) => {
                return Err(FieldError::new(
                    "budget_period",
                    "needs budget_usd (a period without a budget limits nothing)",
                ))
            }
            (None, None) => None,
        };
        Ok(Limits {
            budget,
            rpm: positive("rpm", self.rpm, u64::from(u32::MAX))?.map(|v| v as u32),
            tpm: positive("tpm", self.tpm, u64::MAX)?,
            max_concurrent: positive("max_concurrent", self.max_concurrent, u64::from(u32::MAX))?
                .map(|v| v as u32),
        })
    }
}

fn positive(field: &str, value: Option<u64>, max: u64) -> Result<Option<u64>, FieldError> {
    match value {
        Some(0) => Err(FieldError::new(field, "must be a positive integer")),
        Some(v) if v > max => Err(FieldError::new(field, format!("must be at most {max}"))),
        other => Ok(other),
    }
}

/// Parse a budget period by name; the error names `budget_period`.
pub fn parse_period(text: &str) -> Result<Period, FieldError> {
    text.parse()
        .map_err(|message: String| FieldError::new("budget_period", message))
}

/// Check an API-given key or team name: 1 to 64 letters, digits, `_`, `-` or `.`
/// (names go into URLs and metrics labels).
pub fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "must be 1 to 64 letters, digits, `_`, `-` or `.`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_and_named() {
        let fields = LimitFields {
            budget_usd: Some(Money::from_picos(5)),
            rpm: Some(60),
            ..LimitFields::default()
        };
        let limits = fields.limits().unwrap();
        assert_eq!(limits.budget.unwrap().period, Period::Day);
        assert_eq!(LimitFields::of(&limits).limits().unwrap(), limits);
        for (fields, field) in [
            (
                LimitFields {
                    rpm: Some(0),
                    ..LimitFields::default()
                },
                "rpm",
            ),
            (
                LimitFields {
                    max_concurrent: Some(u64::MAX),
                    ..LimitFields::default()
                },
                "max_concurrent",
            ),
            (
                LimitFields {
                    tpm: Some(0),
                    ..LimitFields::default()
                },
                "tpm",
            ),
            (
                LimitFields {
                    budget_period: Some(Period::Week),
                    ..LimitFields::default()
                },
                "budget_period",
            ),
        ] {
            assert_eq!(fields.limits().unwrap_err().field, field);
        }
        assert_eq!(
            parse_period("fortnight").unwrap_err().field,
            "budget_period"
        );
        assert!(check_name("name", "ci-bot_1.x").is_ok());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", "a/b").is_err());
    }
}
