//! alertbook's web UI: server-rendered HTML pages over the engines' state.
//!
//! Pages: the alerts list ([`alerts`]: firing and pending alerts, filters by
//! runbook entry, route, state and label matchers, automatic refresh), the
//! alert page ([`alert`]: the runbook entry with the latest triage run's
//! evidence inline, sparklines, guard rails, missing facts, and the alert's
//! timeline) and the health page ([`health`]: rules, datasources, recent
//! errors, failed deliveries). Templates are askama's, compiled in and
//! escaping every value; the few fragments built in Rust go through
//! [`html::escape`]. Forms are plain GET forms that work without JavaScript;
//! [`SCRIPT`] only refreshes the live part of a page in place.
//!
//! This crate is pure: it turns the rule engine's statuses, triage records,
//! the notification history and the catalog into HTML, and never serves,
//! reads a clock, a file or a socket. The server crate maps routes onto it
//! (`server::ui`), passing the time in.

pub mod alert;
pub mod alerts;
pub mod evidence;
pub mod filter;
pub mod health;
pub mod html;
pub mod journal;
pub mod login;
pub mod sparkline;

use askama::Template;

/// The stylesheet every page links (`/static/ui.css`).
pub const STYLESHEET: &str = include_str!("../assets/ui.css");
/// The refresh script every page loads (`/static/ui.js`).
pub const SCRIPT: &str = include_str!("../assets/ui.js");

/// A rendered page: its HTML and the HTTP status it answers with (200; 400
/// for refused parameters; 404 for what does not exist).
#[derive(Debug, Clone)]
pub struct Page {
    pub html: String,
    pub status: u16,
}

impl Page {
    fn from_template(template: &impl Template, status: u16) -> Self {
        let html = template.render().unwrap_or_else(|error| {
            // Templates are compiled in; rendering fails only if a value's Display fails.
            format!(
                "<!doctype html><title>error</title><p>page rendering failed: {}</p>",
                html::escape(&error.to_string())
            )
        });
        Page { html, status }
    }
}

/// Who is looking at a page, for the layout's account area and what the
/// page offers: whether accounts exist at all (the journal backend is
/// configured), and the logged-in user.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// Accounts are configured: the navigation shows the journal and a login link.
    pub accounts: bool,
    pub user: Option<User>,
    /// The page's path and query, where the login link comes back to.
    pub here: String,
}

/// A logged-in user as the layout shows them.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// `viewer`, `responder` or `admin`.
    pub role: String,
    /// The session's CSRF token for the page's forms; empty for a request
    /// made with an API token (no logout form then).
    pub csrf_token: String,
}

impl Viewer {
    /// The login page's address that comes back to this page.
    pub fn login_url(&self) -> String {
        login_url(&self.here)
    }
}

/// `/login?next=<path>`, the path URL-encoded.
pub fn login_url(next: &str) -> String {
    if next.is_empty() || next == "/" {
        return "/login".into();
    }
    format!("/login?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>())
}

/// What the shared layout reads: the page's title, which navigation entry is
/// current, the catalog's title and who is looking.
pub struct Layout {
    pub title: String,
    pub current: &'static str,
    pub site: String,
    pub viewer: Viewer,
}

impl Layout {
    pub fn new(title: impl Into<String>, current: &'static str, site: &str) -> Self {
        Layout { title: title.into(), current, site: site.to_owned(), viewer: Viewer::default() }
    }

    /// The same, for `viewer`.
    pub fn for_viewer(title: impl Into<String>, current: &'static str, site: &str, viewer: &Viewer) -> Self {
        Layout { viewer: viewer.clone(), ..Layout::new(title, current, site) }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessageTemplate {
    layout: Layout,
    heading: String,
    message: String,
    links: Vec<(String, String)>,
}

/// A page that says one thing: why a request was refused or failed, with
/// links onward (`(href, text)`), answering with `status`.
pub fn message_page(
    catalog: &catalog::Catalog,
    viewer: &Viewer,
    heading: &str,
    message: String,
    links: Vec<(String, String)>,
    status: u16,
) -> Page {
    let template = MessageTemplate {
        layout: Layout::for_viewer(heading, "", &catalog.title, viewer),
        heading: heading.to_owned(),
        message,
        links,
    };
    Page::from_template(&template, status)
}

/// The "live alerts" section the runbook's entry pages show: links to the
/// alert pages of the entry's active alerts, and to the filtered list.
pub fn runbook_live_alerts(entry_id: &str, alerts: &[(String, String, String)]) -> String {
    let mut out = String::from("<section aria-labelledby=\"live-alerts\"><h2 id=\"live-alerts\">Live alerts</h2>");
    if alerts.is_empty() {
        out.push_str("<p>None of this entry's alerts is active. ");
    } else {
        out.push_str("<ul>");
        for (fingerprint, state, description) in alerts {
            out.push_str("<li><a href=\"/alerts/");
            html::escape_into(&mut out, fingerprint);
            out.push_str("\">");
            html::escape_into(&mut out, description);
            out.push_str("</a> (");
            html::escape_into(&mut out, state);
            out.push_str(")</li>");
        }
        out.push_str("</ul><p>");
    }
    out.push_str("<a href=\"/alerts?runbook=");
    html::escape_into(&mut out, &form_urlencoded::byte_serialize(entry_id.as_bytes()).collect::<String>());
    out.push_str("\">All active alerts of ");
    html::escape_into(&mut out, entry_id);
    out.push_str("</a> · <a href=\"/journal?id=");
    html::escape_into(&mut out, &form_urlencoded::byte_serialize(entry_id.as_bytes()).collect::<String>());
    out.push_str("\">Journal entries of ");
    html::escape_into(&mut out, entry_id);
    out.push_str("</a></p></section>\n");
    out
}
