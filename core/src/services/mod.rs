//! Business rules. Each module owns the reads and writes of one part of the domain; handlers
//! and the CLI call these and never build queries themselves.

pub mod access_tokens;
pub mod admins;
pub mod attempts;
pub mod audit;
pub mod bootstrap;
pub mod client_credentials;
pub mod clients;
pub mod consents;
pub mod defences;
pub mod device_authorizations;
pub mod device_grants;
pub mod entropy;
pub mod grants;
pub mod interaction;
pub mod introspection;
pub mod keys;
pub mod refresh;
pub mod revocation;
pub mod scopes;
pub mod simulator;
pub mod tokens;
pub mod user_grants;
pub mod userinfo;
pub mod users;
pub mod workspaces;

use sea_orm::{DbErr, SqlErr};

use crate::error::Error;

/// Turns a unique-constraint violation (a lost race against a concurrent insert) into the
/// same conflict the pre-check reports.
pub(crate) fn map_unique(err: DbErr, field: &'static str, message: impl Into<String>) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => Error::conflict(field, message),
        _ => err.into(),
    }
}

/// The rows of `E` whose `column` is one of `ids`, by the id `key` reads from each: one query
/// for a whole list (how lists join their clients, users and grants without a query per row).
pub(crate) async fn by_id<E, C>(
    db: &impl sea_orm::ConnectionTrait,
    column: C,
    ids: impl IntoIterator<Item = uuid::Uuid>,
    key: impl Fn(&E::Model) -> uuid::Uuid,
) -> Result<std::collections::HashMap<uuid::Uuid, E::Model>, Error>
where
    E: sea_orm::EntityTrait,
    C: sea_orm::ColumnTrait,
{
    use sea_orm::QueryFilter as _;
    Ok(E::find()
        .filter(column.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (key(&m), m))
        .collect())
}

/// One page of a longer list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// 1-based.
    pub number: u64,
    pub pages: u64,
    pub total: u64,
}

/// Fetches page `number` (1-based; out-of-range numbers give the nearest page) of `per_page`.
pub(crate) async fn fetch_page<'db, C, S>(
    db: &'db C,
    select: S,
    per_page: u64,
    number: u64,
) -> Result<Page<<S::Selector as sea_orm::SelectorTrait>::Item>, Error>
where
    C: sea_orm::ConnectionTrait,
    S: sea_orm::PaginatorTrait<'db, C>,
{
    let paginator = select.paginate(db, per_page.max(1));
    let counts = paginator.num_items_and_pages().await?;
    let pages = counts.number_of_pages.max(1);
    let number = number.clamp(1, pages);
    let items = paginator.fetch_page(number - 1).await?;
    Ok(Page {
        items,
        number,
        pages,
        total: counts.number_of_items,
    })
}

/// A case-insensitive `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` taken
/// literally (use with `ESCAPE '\'`).
pub(crate) fn contains_pattern(needle: &str) -> sea_orm::sea_query::LikeExpr {
    let mut pattern = String::from("%");
    // Nothing stored holds a control character, and PostgreSQL refuses a NUL in a pattern.
    for c in needle.to_lowercase().chars().filter(|c| !c.is_control()) {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')
}
