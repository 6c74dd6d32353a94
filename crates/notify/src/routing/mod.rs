//! Alertmanager-compatible routing, pure and clock-injected: `alertmanager.yml`
//! read unchanged ([`config`]), label matchers ([`matcher`]), the route tree
//! ([`route`]), time intervals ([`timeinterval`]), silences ([`silence`]),
//! inhibition ([`inhibit`]), the notification log ([`nflog`]) and the engine
//! that groups alerts and runs the notification pipeline ([`engine`]).
//!
//! Nothing here reads the clock, sleeps, or touches the network: the caller
//! passes `now` in, takes the [`Notification`]s [`Router::tick`] returns, and
//! persists and delivers them. Semantics follow Alertmanager 0.25 (the
//! version Debian ships), named at the line that implements them.

pub mod config;
pub mod engine;
pub mod inhibit;
pub mod matcher;
pub mod nflog;
pub mod route;
pub mod silence;
pub mod timeinterval;

pub use config::{Integration, IntegrationSettings, Receiver, RoutingConfig};
pub use engine::{AlertStatus, Notification, Router, StoredAlert};
pub use matcher::{LabelSet, MatchType, Matcher, Matchers, parse_matchers};
pub use nflog::{LogEntry, NotificationLog};
pub use route::{GroupBy, Route, RouteTree};
pub use silence::{Silence, SilenceError, SilenceMatcher, SilenceState, Silences};
