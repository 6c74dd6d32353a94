//! The PromQL evaluator (Prometheus 3 semantics) over the `promql-parser` AST.
