//! Console form bodies. Forms repeat fields (checkbox groups) and carry checkboxes that are
//! absent when unticked, so a body is read as its list of pairs; a POST handler takes it as
//! `CsrfForm<Fields>`, which exists only once the form's `csrf_token` matched the session's.

use serde::Deserialize;
use vestibule_web::CsrfProtected;

use crate::error::ConsoleError;

/// The fields of a submitted form, in order.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, or `""` when absent.
    #[must_use]
    pub fn text(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name` (a checkbox group).
    #[must_use]
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A checkbox: ticked when sent at all (browsers send nothing for an unticked box).
    #[must_use]
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// A whole number typed into `name`.
    ///
    /// # Errors
    /// `Invalid` naming the field when it is not a whole number.
    pub fn number(&self, name: &'static str) -> Result<i64, vestibule_core::Error> {
        let text = self.text(name).trim();
        text.parse().map_err(|_| {
            vestibule_core::Error::invalid(
                name,
                format!(
                    "{} must be a whole number, not {text:?}",
                    name.replace('_', " ")
                ),
            )
        })
    }
}

/// Field errors of a form, by field name, for the template's `errors`.
pub type Errors = std::collections::BTreeMap<&'static str, String>;

/// The errors map for a domain error: beside its field when the form has that field, else
/// under `form` (shown above the form).
#[must_use]
pub fn errors_for(e: &vestibule_core::Error, fields_on_form: &[&'static str]) -> Errors {
    let field = e
        .field()
        .filter(|f| fields_on_form.contains(f))
        .unwrap_or("form");
    Errors::from([(field, e.to_string())])
}

impl CsrfProtected for Fields {
    fn csrf_token(&self) -> Option<&str> {
        Some(self.text("csrf_token")).filter(|t| !t.is_empty())
    }
}

/// Separates the caller's mistakes (to show beside the form's fields) from failures: `Ok(Err)`
/// for `Invalid` and `Conflict`, `Err` for the rest (`NotFound` becomes a 404).
///
/// # Errors
/// Failures that are not the form's to fix.
pub fn validated<T>(
    result: Result<T, vestibule_core::Error>,
) -> Result<Result<T, vestibule_core::Error>, ConsoleError> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.field().is_some() => Ok(Err(e)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_absent_fields() {
        let f = Fields(
            serde_urlencoded::from_str("grants=device_code&grants=refresh_token&public=on&name=A")
                .unwrap(),
        );
        assert_eq!(f.all("grants"), ["device_code", "refresh_token"]);
        assert!(f.checked("public"));
        assert!(!f.checked("dcr_template"));
        assert_eq!(f.text("name"), "A");
        assert_eq!(f.text("missing"), "");
    }
}
