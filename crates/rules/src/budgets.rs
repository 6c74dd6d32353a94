//! The cardinality budgets contract as series: one
//! `alertbook_cardinality_budget{metric="...", owner="..."}` per budget, which
//! the catalog's cardinality alert compares active series against.

use tsdb::Labels;

/// The metric name the budgets are published under.
pub const BUDGET_METRIC: &str = "alertbook_cardinality_budget";

/// The budget series of every `cardinality-budgets` contract of `catalog`.
pub fn budget_series(catalog: &catalog::Catalog) -> Vec<(Labels, f64)> {
    catalog
        .contracts
        .values()
        .filter_map(|contract| match &contract.kind {
            catalog::ContractKind::CardinalityBudgets(budgets) => Some(budgets),
            _ => None,
        })
        .flatten()
        .map(|budget| {
            let labels = Labels::from_pairs([
                (tsdb::METRIC_NAME, BUDGET_METRIC),
                ("metric", budget.metric.as_str()),
                ("owner", budget.owner.as_str()),
            ]);
            (labels, budget.cardinality_budget as f64)
        })
        .collect()
}
