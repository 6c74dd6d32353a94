//! The routing tree (Alertmanager's `dispatch/route.go`): each node holds its
//! matchers and the options it inherited or set; an alert walks the tree
//! depth first, left to right, and lands on the deepest matching nodes,
//! moving on to a matching node's next sibling only when it has `continue`.
//!
//! A node with many children indexes them by one equality matcher each
//! (`service="svc-1"`): an alert is checked only against the children its
//! label values can match and those without such a matcher, in their
//! order, so a tree of a thousand `service=` routes costs a lookup, not a
//! thousand comparisons.

use std::collections::HashMap;
use std::time::Duration;

use super::matcher::{LabelSet, Matchers};

/// What alerts of a route are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// These label names (sorted); empty puts every alert of the route in one group.
    Labels(Vec<String>),
    /// `group_by: ['...']`: every label, so each alert is its own group.
    All,
}

/// A node of the tree, options already inherited.
#[derive(Debug, Clone)]
pub struct Route {
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub matchers: Matchers,
    pub continue_matching: bool,
    /// Not inherited, as in Alertmanager.
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Alertmanager's route key: the parent's key, `/`, the sorted matchers.
    pub key: String,
}

impl Default for Route {
    fn default() -> Self {
        Self {
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            matchers: Matchers::default(),
            continue_matching: false,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            parent: None,
            children: Vec::new(),
            key: "{}".into(),
        }
    }
}

impl Route {
    /// The labels of `labels` that name the alert's group on this route.
    pub fn group_labels(&self, labels: &LabelSet) -> LabelSet {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => {
                names.iter().filter_map(|name| labels.get(name).map(|value| (name.clone(), value.clone()))).collect()
            }
        }
    }
}

/// A node's children by an equality matcher each: label name, then value,
/// then the children's positions (ascending).
#[derive(Debug, Clone, Default)]
struct ChildIndex {
    by_label: HashMap<String, HashMap<String, Vec<usize>>>,
    /// Positions of the children without an equality matcher.
    unindexed: Vec<usize>,
}

/// Below this many children a node's children are simply walked.
const INDEXED_CHILDREN: usize = 16;

/// The tree, nodes in depth-first order; index 0 is the root.
#[derive(Debug, Clone)]
pub struct RouteTree {
    nodes: Vec<Route>,
    /// Per node, its children's index.
    indexes: Vec<ChildIndex>,
}

impl RouteTree {
    pub fn new(root: Route) -> Self {
        let mut tree = Self { nodes: Vec::new(), indexes: Vec::new() };
        tree.replace_root(root);
        tree
    }

    pub fn replace_root(&mut self, mut root: Route) {
        root.parent = None;
        root.key = root.matchers.to_string();
        if self.nodes.is_empty() {
            self.nodes.push(root);
            self.indexes.push(ChildIndex::default());
        } else {
            root.children = std::mem::take(&mut self.nodes[0].children);
            self.nodes[0] = root;
        }
    }

    /// Adds `route` as the last child of `parent`; returns its index.
    pub fn add_child(&mut self, parent: usize, mut route: Route) -> usize {
        let index = self.nodes.len();
        route.parent = Some(parent);
        route.key = format!("{}/{}", self.nodes[parent].key, route.matchers);
        route.children.clear();
        let equality = route
            .matchers
            .0
            .iter()
            .find(|matcher| matcher.match_type == super::matcher::MatchType::Equal)
            .map(|matcher| (matcher.name.clone(), matcher.value.clone()));
        self.nodes.push(route);
        self.indexes.push(ChildIndex::default());
        let position = self.nodes[parent].children.len();
        self.nodes[parent].children.push(index);
        let siblings = &mut self.indexes[parent];
        match equality {
            Some((name, value)) => siblings.by_label.entry(name).or_default().entry(value).or_default().push(position),
            None => siblings.unindexed.push(position),
        }
        index
    }

    pub fn root(&self) -> &Route {
        &self.nodes[0]
    }

    pub fn get(&self, index: usize) -> &Route {
        &self.nodes[index]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &Route)> {
        self.nodes.iter().enumerate()
    }

    /// The routes an alert with `labels` is handled by (indices), in order.
    pub fn matching(&self, labels: &LabelSet) -> Vec<usize> {
        let mut found = Vec::new();
        self.match_node(0, labels, &mut found);
        found
    }

    fn match_node(&self, index: usize, labels: &LabelSet, found: &mut Vec<usize>) -> bool {
        let node = &self.nodes[index];
        if !node.matchers.matches(labels) {
            return false;
        }
        let before = found.len();
        if node.children.len() < INDEXED_CHILDREN {
            for &child in &node.children {
                let matched = self.match_node(child, labels, found);
                if matched && !self.nodes[child].continue_matching {
                    break;
                }
            }
        } else {
            // The children that can match, in their order: those whose
            // equality matcher holds for the alert's value ("" when the
            // label is missing, as matchers read it) and the unindexed.
            let siblings = &self.indexes[index];
            let mut candidates = siblings.unindexed.clone();
            for (name, values) in &siblings.by_label {
                let value = labels.get(name).map_or("", String::as_str);
                if let Some(positions) = values.get(value) {
                    candidates.extend_from_slice(positions);
                }
            }
            candidates.sort_unstable();
            for position in candidates {
                let child = node.children[position];
                let matched = self.match_node(child, labels, found);
                if matched && !self.nodes[child].continue_matching {
                    break;
                }
            }
        }
        if found.len() == before {
            found.push(index);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::matcher::{MatchType, Matcher};

    fn route(receiver: &str, matchers: &[(MatchType, &str, &str)], continue_matching: bool) -> Route {
        Route {
            receiver: receiver.into(),
            matchers: Matchers(
                matchers.iter().map(|(kind, name, value)| Matcher::new(*kind, name, value).expect("matcher")).collect(),
            ),
            continue_matching,
            ..Route::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    /// The index gives what walking every child gives: order, `continue`,
    /// regex and negative matchers, an empty value matching a missing label.
    #[test]
    fn an_indexed_node_matches_as_a_walk_does() {
        let build = |indexed: bool| {
            let mut tree = RouteTree::new(route("root", &[], false));
            let mut children = vec![
                route("regex", &[(MatchType::Regexp, "service", "svc-1.*")], true),
                route("no-team", &[(MatchType::Equal, "team", "")], true),
                route("not-db", &[(MatchType::NotEqual, "service", "db"), (MatchType::Equal, "tier", "gold")], true),
            ];
            for n in 0..40 {
                children.push(route(
                    &format!("svc-{n}"),
                    &[(MatchType::Equal, "service", &format!("svc-{n}"))],
                    n == 12,
                ));
            }
            children.push(route("svc-12-again", &[(MatchType::Equal, "service", "svc-12")], false));
            children.push(route("svc-3-late", &[(MatchType::Equal, "service", "svc-3")], false));
            children.push(route("catch-all", &[], false));
            if !indexed {
                children.truncate(INDEXED_CHILDREN - 1);
            }
            for child in children {
                tree.add_child(0, child);
            }
            tree
        };
        let tree = build(true);
        let receivers = |set: &[(&str, &str)]| {
            tree.matching(&labels(set)).into_iter().map(|index| tree.get(index).receiver.clone()).collect::<Vec<_>>()
        };
        assert_eq!(receivers(&[("service", "svc-12"), ("team", "a")]), ["regex", "svc-12", "svc-12-again"]);
        assert_eq!(receivers(&[("service", "svc-3"), ("tier", "gold")]), ["no-team", "not-db", "svc-3"]);
        assert_eq!(receivers(&[("service", "other"), ("team", "a")]), ["catch-all"]);
        assert_eq!(receivers(&[("team", "a")]), ["catch-all"]);
        // A node below the threshold walks its children, with the same answers.
        let small = build(false);
        let walked = small.matching(&labels(&[("service", "svc-2"), ("tier", "gold")]));
        let walked: Vec<&str> = walked.iter().map(|index| small.get(*index).receiver.as_str()).collect();
        assert_eq!(walked, ["no-team", "not-db", "svc-2"]);
        assert_eq!(receivers(&[("service", "svc-2"), ("tier", "gold")]), walked);
    }
}
