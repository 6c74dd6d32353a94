//! The routing tree (Alertmanager's `dispatch/route.go`): each node holds its
//! matchers and the options it inherited or set; an alert walks the tree
//! depth first, left to right, and lands on the deepest matching nodes,
//! moving on to a matching node's next sibling only when it has `continue`.

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

/// The tree, nodes in depth-first order; index 0 is the root.
#[derive(Debug, Clone)]
pub struct RouteTree {
    nodes: Vec<Route>,
}

impl RouteTree {
    pub fn new(root: Route) -> Self {
        let mut tree = Self { nodes: Vec::new() };
        tree.replace_root(root);
        tree
    }

    pub fn replace_root(&mut self, mut root: Route) {
        root.parent = None;
        root.key = root.matchers.to_string();
        if self.nodes.is_empty() {
            self.nodes.push(root);
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
        self.nodes.push(route);
        self.nodes[parent].children.push(index);
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
        for &child in &node.children {
            let matched = self.match_node(child, labels, found);
            if matched && !self.nodes[child].continue_matching {
                break;
            }
        }
        if found.len() == before {
            found.push(index);
        }
        true
    }
}
