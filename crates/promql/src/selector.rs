//! Series selectors outside queries: the `match[]` parameters of the metadata
//! APIs (`/api/v1/series`, `/api/v1/labels`), turned into store matchers.

use promql_parser::parser::Expr;

use crate::Error;
use crate::engine::{matcher_groups, parse};

/// The store matchers of a series selector such as `up{job="api"}`: one group
/// per `or` alternative. Anything but a plain selector is an error, as is a
/// selector whose matchers all match the empty string.
pub fn selector_matchers(selector: &str) -> Result<Vec<Vec<tsdb::Matcher>>, Error> {
    let Expr::VectorSelector(vector) = parse(selector)? else {
        return Err(Error::Execution(format!("{selector:?} is not a series selector")));
    };
    let groups = matcher_groups(&vector)?;
    if groups.iter().any(|group| group.iter().all(tsdb::Matcher::matches_empty)) {
        return Err(Error::Execution("match[] must contain at least one non-empty matcher".into()));
    }
    Ok(groups)
}
