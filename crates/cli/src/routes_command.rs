//! `alertbook routes test`: the receivers an alert with the given labels
//! reaches under an `alertmanager.yml`, printed as `amtool config routes
//! test --config.file` prints them (comma-separated, in the order the tree
//! is walked, a receiver once per matching route). The answer comes from the
//! route tree alertbook routes by (`notify::routing::RouteTree::matching`),
//! so it says what alertbook does, not what the file is expected to do.

use std::path::PathBuf;
use std::process::ExitCode;

use notify::routing::{LabelSet, MatchType};

#[derive(Debug, clap::Subcommand)]
pub enum RoutesCommand {
    /// Print the receivers an alert with the given labels is routed to.
    ///
    /// Reads the alertmanager.yml (validated as `alertbook check` validates it) and walks
    /// its route tree with the labels, as `amtool config routes test --config.file FILE`
    /// does: the receivers of every matching route, comma-separated. With
    /// --verify.receivers, exits 1 when they differ from the expected list.
    Test(TestArguments),
}

#[derive(Debug, clap::Args)]
pub struct TestArguments {
    /// The alertmanager.yml to route by.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The expected receivers, comma-separated (as amtool's --verify.receivers).
    #[arg(long = "verify.receivers", value_name = "LIST")]
    verify_receivers: Option<String>,
    /// The alert's labels: name=value or name="value".
    #[arg(value_name = "LABEL=VALUE")]
    labels: Vec<String>,
}

pub fn run(command: &RoutesCommand) -> anyhow::Result<ExitCode> {
    let RoutesCommand::Test(arguments) = command;
    let config = match notify::routing::config::load(&arguments.config) {
        Ok(config) => config,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let labels = parse_labels(&arguments.labels)?;
    let receivers = receivers(&config.route, &labels);
    let answer = receivers.join(",");
    println!("{answer}");
    if let Some(expected) = &arguments.verify_receivers
        && expected != &answer
    {
        eprintln!("WARNING: expected receivers {expected:?} did not match resolved receivers {answer:?}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The receiver of each route the labels land on, in tree order.
pub fn receivers(tree: &notify::routing::RouteTree, labels: &LabelSet) -> Vec<String> {
    tree.matching(labels).into_iter().map(|index| tree.get(index).receiver.clone()).collect()
}

/// `name=value` arguments as a label set; as amtool, each is read as an
/// equality matcher, so the value may be quoted.
fn parse_labels(arguments: &[String]) -> anyhow::Result<LabelSet> {
    let mut labels = LabelSet::new();
    for argument in arguments {
        let matcher = notify::routing::matcher::parse_matcher(argument)
            .map_err(|error| anyhow::anyhow!("label {argument:?}: {error}"))?;
        if matcher.match_type != MatchType::Equal {
            anyhow::bail!("label {argument:?}: expected name=value, got a {} matcher", matcher.match_type.as_str());
        }
        labels.insert(matcher.name, matcher.value);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_as_equality_matchers() {
        let labels = parse_labels(&["alertname=Disk".into(), "team=\"db ops\"".into()]).expect("parses");
        assert_eq!(labels.get("alertname").map(String::as_str), Some("Disk"));
        assert_eq!(labels.get("team").map(String::as_str), Some("db ops"));
        let error = parse_labels(&["severity=~crit.*".into()]).expect_err("regex refused");
        assert!(error.to_string().contains("expected name=value"), "{error}");
    }
}
