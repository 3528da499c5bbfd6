//! The HTML templates under `templates/` (pages and, later, mails), embedded into the binary
//! and rendered with tera. Autoescaping is on for `.html`.

use std::sync::LazyLock;

use include_dir::{Dir, include_dir};
use serde::Serialize;

static TEMPLATE_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../templates");

/// Parsed once per process: the templates are compiled into the binary, so every app instance
/// would parse the same text, and error pages are rendered where no request state is at hand.
static EMBEDDED: LazyLock<Result<Templates, String>> =
    LazyLock::new(|| Templates::parse(&TEMPLATE_DIR).map_err(|e| error_chain(&e)));

/// A template that could not be rendered: a bug, reported as a server error.
#[derive(Debug, thiserror::Error)]
#[error("cannot render a page: {0}")]
pub struct RenderError(String);

/// The tera templates under `templates/`, named by their path there (`activate/entry.html`).
pub struct Templates {
    tera: tera::Tera,
}

impl Templates {
    /// The templates compiled into this binary.
    ///
    /// # Errors
    /// When an embedded template does not parse (caught by the unit tests below).
    pub fn embedded() -> Result<&'static Self, RenderError> {
        EMBEDDED
            .as_ref()
            .map_err(|message| RenderError(message.clone()))
    }

    fn parse(dir: &Dir<'_>) -> Result<Self, tera::Error> {
        let mut sources = Vec::new();
        collect_templates(dir, &mut sources);
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(sources)?;
        Ok(Self { tera })
    }

    /// # Errors
    /// When the template is missing or fails on the context.
    pub fn render(&self, name: &str, context: &impl Serialize) -> Result<String, RenderError> {
        let context =
            tera::Context::from_serialize(context).map_err(|e| RenderError(error_chain(&e)))?;
        self.tera
            .render(name, &context)
            .map_err(|e| RenderError(error_chain(&e)))
    }

    /// Whether a template of this name is embedded.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.tera.get_template_names().any(|n| n == name)
    }
}

/// Renders an embedded template.
///
/// # Errors
/// When the templates do not parse, or the template is missing or fails on the context.
pub fn render(name: &str, context: &impl Serialize) -> Result<String, RenderError> {
    Templates::embedded()?.render(name, context)
}

fn collect_templates<'a>(dir: &Dir<'a>, out: &mut Vec<(String, &'a str)>) {
    for file in dir.files() {
        if let Some(text) = file.contents_utf8() {
            out.push((file.path().to_string_lossy().into_owned(), text));
        }
    }
    for sub in dir.dirs() {
        collect_templates(sub, out);
    }
}

/// Tera nests the reason in its error sources; a log line needs all of it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_template_parses() {
        let templates = Templates::embedded().unwrap();
        for name in ["base.html", "activate/entry.html", "console/layout.html"] {
            assert!(templates.has(name), "{name}");
        }
    }

    #[test]
    fn html_is_escaped() {
        let body = render(
            "activate/problem.html",
            &serde_json::json!({ "title": "<b>x</b>", "message": "\"'&" }),
        )
        .unwrap();
        assert!(body.contains("&lt;b&gt;x&lt;&#x2F;b&gt;"), "{body}");
        assert!(!body.contains("<b>x</b>"));
        assert!(body.contains("&quot;&#x27;&amp;"), "{body}");
    }
}
